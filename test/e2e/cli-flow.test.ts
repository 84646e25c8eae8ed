import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { servicesPrefix } from '../../framework/registry/record.js'
import { frameworkTarball } from '../support/framework-package.js'
import { alive, CLI, SpawnedInstance } from '../support/instance.js'
import { PhoneBookProbe } from '../support/phone-book.js'

let etcd: EtcdServer
let probe: PhoneBookProbe
let workdir: string
const running: SpawnedInstance[] = []

/** Runs the real CLI as a user would; returns exit code and output. */
function cli(args: string[], cwd: string, env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

beforeAll(async () => {
  etcd = await EtcdServer.start()
  probe = new PhoneBookProbe(etcd.endpoint, 'shop')
  workdir = mkdtempSync(join(tmpdir(), 'framework-cli-'))
})

afterAll(async () => {
  for (const instance of running) await instance.kill('SIGKILL')
  probe.close()
  await etcd.dispose()
  rmSync(workdir, { recursive: true, force: true })
})

it('new → generate service ×2 → dev --local → call across services → ps → routes → Ctrl-C leaves nothing', async () => {
  const app = join(workdir, 'shop')
  const created = cli(['new', app, '--skip-install', '--framework', frameworkTarball()], workdir)
  expect(created.code, created.stderr).toBe(0)
  const install = spawnSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], {
    cwd: app,
    encoding: 'utf8',
    timeout: 180_000,
  })
  expect(install.status, install.stderr).toBe(0)

  expect(cli(['generate', 'service', 'inventory'], app).code).toBe(0)
  const orders = cli(['generate', 'service', 'orders', '--deps', 'inventory'], app)
  expect(orders.code, orders.stderr).toBe(0)
  expect(orders.stdout).toContain('create services/orders/index.ts')

  // The generated tests pass and the generated code type-checks in the new app.
  const tests = spawnSync('npx', ['vitest', 'run'], {
    cwd: app,
    encoding: 'utf8',
    timeout: 120_000,
  })
  expect(tests.status, tests.stdout + tests.stderr).toBe(0)
  const types = spawnSync('npx', ['tsc', '--noEmit'], {
    cwd: app,
    encoding: 'utf8',
    timeout: 120_000,
  })
  expect(types.status, types.stdout + types.stderr).toBe(0)

  const env = { ETCD_ENDPOINTS: etcd.endpoint }
  const dev = new SpawnedInstance(
    spawn(process.execPath, [CLI, 'dev', '--local', '--replicas', 'inventory=2'], {
      cwd: app,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
  running.push(dev)
  let output = ''
  dev.child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  const deadline = Date.now() + 60_000
  while (!output.includes('all 4 instances registered') && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  expect(output).toContain("all 4 instances registered (namespace 'shop'")

  const called = cli(['call', 'orders.inventoryPing', '{"name":"ada"}'], app, env)
  expect(called.code, called.stderr).toBe(0)
  expect(JSON.parse(called.stdout)).toMatchObject({ message: 'hello ada' })
  expect(JSON.parse(called.stdout).instance).toMatch(/^inventory-/)

  const ps = cli(['ps', '--json'], app, env)
  expect(ps.code, ps.stderr).toBe(0)
  const book = JSON.parse(ps.stdout) as {
    instances: { role: string; pid: number; stale: boolean }[]
  }
  expect(book.instances.map((i) => i.role).sort()).toEqual([
    'hello',
    'inventory',
    'inventory',
    'orders',
  ])
  expect(book.instances.every((i) => !i.stale)).toBe(true)
  const psTable = cli(['ps'], app, env)
  expect(psTable.stdout).toMatch(/^role\s+instance\s+url\s+age/)

  const routes = cli(['routes'], app)
  expect(routes.code).toBe(0)
  // The exposed column: nothing in a generated app is reachable through the gateway.
  expect(routes.stdout).toMatch(/^role\s+procedure\s+kind\s+input\s+exposed\s+deps/)
  expect(routes.stdout).toMatch(
    /orders\s+inventoryPing\s+query\s+\{ name: string \}\s+-\s+inventory/,
  )
  const routesJson = JSON.parse(cli(['routes', '--json'], app).stdout) as {
    role: string
    exposed: boolean
  }[]
  expect(new Set(routesJson.map((r) => r.role))).toEqual(new Set(['hello', 'inventory', 'orders']))
  expect(routesJson.every((r) => r.exposed === false)).toBe(true)

  dev.child.kill('SIGINT')
  expect(await dev.exited).toBe(0)
  expect(output).toContain('framework stopped')
  for (const { pid } of book.instances) expect(alive(pid), `pid ${pid}`).toBe(false)
  const keys = await probe.client.getAll().prefix(servicesPrefix('shop')).keys()
  expect(keys).toEqual([])
}, 150_000)
