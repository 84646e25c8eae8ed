import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { freePort } from '../../framework/cli/free-port.js'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { frameworkTarball } from '../support/framework-package.js'
import { gatewayReady } from '../support/gateway-process.js'
import { CLI, REPO_ROOT, SpawnedInstance } from '../support/instance.js'

// The framework as users get it: `npm pack` (the globalSetup) → `framework new` vendors the
// tarball → npm install → `framework build` with the installed CLI → built instances and the
// gateway (as production images run them) on plain node, with tsx nowhere in their module graph
// (recorded by a loader hook), registered and callable.

const PROBE = join(REPO_ROOT, 'test/support/module-probe.mjs')
let etcd: EtcdServer
let workdir: string
const running: SpawnedInstance[] = []

function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}) {
  const result = spawnSync(command, args, {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 180_000,
  })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

beforeAll(async () => {
  etcd = await EtcdServer.start()
  workdir = realpathSync(mkdtempSync(join(tmpdir(), 'framework-package-')))
})

afterAll(async () => {
  for (const instance of running) await instance.kill('SIGKILL')
  await etcd.dispose()
  rmSync(workdir, { recursive: true, force: true })
})

it('npm pack → install into a new app → framework build → built instances and gateway without tsx, registered and callable', async () => {
  const app = join(workdir, 'shop')
  const tarball = frameworkTarball()
  const created = run(
    process.execPath,
    [CLI, 'new', app, '--skip-install', '--framework', tarball],
    workdir,
  )
  expect(created.code, created.stderr).toBe(0)
  const pkg = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>
  }
  expect(pkg.dependencies.framework).toBe('file:vendor/framework-0.1.0.tgz')
  const install = run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], app)
  expect(install.code, install.stderr).toBe(0)

  // The installed CLI (node_modules/.bin/framework → dist/cli/bin.js), as `npx framework` runs it.
  const framework = join(app, 'node_modules/.bin/framework')
  expect(realpathSync(framework)).toBe(join(app, 'node_modules/framework/dist/cli/bin.js'))
  expect(run(framework, ['generate', 'service', 'inventory'], app).code).toBe(0)
  expect(run(framework, ['generate', 'service', 'orders', '--deps', 'inventory'], app).code).toBe(0)
  // orders is the app's door (exposed through the gateway); gateway.ts sets a CORS allowlist.
  const ordersFile = join(app, 'services/orders/index.ts')
  writeFileSync(
    ordersFile,
    readFileSync(ordersFile, 'utf8').replace(
      "role: 'orders', router",
      "role: 'orders', router, expose: true",
    ),
  )
  writeFileSync(
    join(app, 'gateway.ts'),
    "import { defineGateway } from 'framework'\nexport default defineGateway({ cors: { origins: ['http://shop.test'] } })\n",
  )
  const built = run(framework, ['build'], app)
  expect(built.code, built.stderr).toBe(0)
  expect(built.stdout).toMatch(
    /built .*orders\.mjs.*\.framework\/build\/_gateway\.mjs and the manifest/,
  )

  const env = {
    ETCD_ENDPOINTS: etcd.endpoint,
    HOST: '127.0.0.1',
    ADVERTISE_HOST: '127.0.0.1',
    FRAMEWORK_TTL: '2',
  }
  const spawnBuilt = (name: string, args: string[], extra: Record<string, string> = {}) => {
    const probeFile = join(workdir, `${name}-modules.json`)
    const instance = new SpawnedInstance(
      spawn(process.execPath, ['--import', PROBE, framework, ...args], {
        cwd: app,
        env: { ...process.env, ...env, ...extra, MODULE_PROBE_FILE: probeFile },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    )
    running.push(instance)
    return { instance, probeFile }
  }
  const start = (role: string) => spawnBuilt(role, ['start', role, '--built'])
  const inventory = start('inventory')
  const orders = start('orders')
  for (const { instance } of [inventory, orders]) {
    const ran = await instance.waitForLog('running the built bundle')
    expect(ran.code).toBe('bundle')
    await instance.waitForLog('registered in etcd', 30_000)
  }

  // The gateway as an image runs it: NODE_ENV=production picks the bundles (no --built).
  const gatewayPort = await freePort()
  const gateway = spawnBuilt('gateway', ['gateway'], {
    NODE_ENV: 'production',
    GATEWAY_PORT: String(gatewayPort),
  })
  const loaded = [
    await gateway.instance.waitForLog('running the built bundle .framework/build/orders.mjs'),
    await gateway.instance.waitForLog('running the built bundle .framework/build/_gateway.mjs'),
  ]
  expect(loaded.map((line) => line.code)).toEqual(['bundle', 'bundle'])
  const edge = `http://127.0.0.1:${gatewayPort}`
  await gatewayReady(edge, 30_000)
  const viaGateway = await fetch(
    `${edge}/api/orders/inventoryPing?input=${encodeURIComponent('{"name":"ada"}')}`,
  )
  expect(viaGateway.status).toBe(200)
  expect(await viaGateway.json()).toMatchObject({ message: 'hello ada' })
  expect((await fetch(`${edge}/trpc/inventory.ping?input={}`)).status).toBe(404)
  // gateway.ts's bundle is what answers the preflight: its allowlist, not the default (none).
  const preflight = await fetch(`${edge}/trpc/orders.ping`, {
    method: 'OPTIONS',
    headers: { origin: 'http://shop.test', 'access-control-request-method': 'GET' },
  })
  expect(preflight.headers.get('access-control-allow-origin')).toBe('http://shop.test')

  const called = run(
    process.execPath,
    ['--import', PROBE, framework, 'call', 'orders.inventoryPing', '{"name":"ada"}'],
    app,
    { ...env, MODULE_PROBE_FILE: join(workdir, 'call-modules.json') },
  )
  expect(called.code, called.stderr).toBe(0)
  expect(JSON.parse(called.stdout)).toMatchObject({ message: 'hello ada' })
  expect(JSON.parse(called.stdout).instance).toMatch(/^inventory-/)
  const listed = run(process.execPath, ['--import', PROBE, framework, 'ps'], app, {
    ...env,
    MODULE_PROBE_FILE: join(workdir, 'ps-modules.json'),
  })
  expect(listed.code, listed.stderr).toBe(0)
  expect(listed.stdout.split('\n')[0]).toMatch(/calls\/s\s+5xx$/)

  // The installed CLI re-vendors itself: npm pack of node_modules/framework.
  rmSync(join(app, 'vendor'), { recursive: true })
  const upgraded = run(framework, ['upgrade', '--skip-install'], app)
  expect(upgraded.code, upgraded.stderr).toBe(0)
  expect(upgraded.stdout).toContain('create vendor/framework-0.1.0.tgz')
  expect(existsSync(join(app, 'vendor/framework-0.1.0.tgz'))).toBe(true)

  for (const { instance } of [gateway, inventory, orders]) {
    expect(await instance.kill('SIGTERM')).toBe(0)
  }
  for (const probeFile of [
    inventory.probeFile,
    orders.probeFile,
    gateway.probeFile,
    join(workdir, 'call-modules.json'),
    join(workdir, 'ps-modules.json'),
  ]) {
    const modules = JSON.parse(readFileSync(probeFile, 'utf8')) as string[]
    // The probe saw the process load the installed framework's compiled code…
    expect(modules.some((m) => m.includes('/node_modules/framework/dist/'))).toBe(true)
    // …and never tsx, nor any TypeScript file.
    expect(modules.filter((m) => m.includes('/node_modules/tsx/'))).toEqual([])
    expect(modules.filter((m) => /\.[cm]?ts$/.test(m))).toEqual([])
  }
  // prom-client is loaded by instances and the gateway at boot, never by the CLI's one-shots.
  const loadsPromClient = (probeFile: string) =>
    (JSON.parse(readFileSync(probeFile, 'utf8')) as string[]).some((m) =>
      m.includes('/node_modules/prom-client/'),
    )
  for (const { probeFile } of [inventory, orders, gateway]) {
    expect(loadsPromClient(probeFile), probeFile).toBe(true)
  }
  for (const oneShot of ['call', 'ps']) {
    expect(loadsPromClient(join(workdir, `${oneShot}-modules.json`)), oneShot).toBe(false)
  }
}, 240_000)
