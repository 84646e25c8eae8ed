import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type ContainerState,
  composeCommand,
  inspectContainers,
} from '../../../framework/cli/docker.js'
import { CallLoop, type LoopTarget } from '../../support/call-loop.js'
import { packFramework } from '../../support/framework-package.js'
import { CLI, REPO_ROOT } from '../../support/instance.js'
import { PhoneBookProbe } from '../../support/phone-book.js'
import { waitFor } from '../../support/wait.js'
import { Deletions, freePortPair } from './compose-support.js'
import { DockerEngine, ensureDockerTools, runChecked } from './docker-engine.js'
import { type HostImages, hostImages } from './host-images.js'

// A user's app on a real Docker engine: `framework new` (the framework vendored as the packed
// tarball) → generate service ×2 with a dependency → `framework dev --detach` (images from the
// multi-stage template, built on this machine's node) → a typed call across the two services →
// kill -9 of a replica under load → `framework down`; then `framework dev` in the foreground,
// stopped with SIGINT. Every command is the app's own installed CLI (npx framework).
const NAMESPACE = 'shop'
const LOG_DIR = join(REPO_ROOT, '.tmp', 'compose-new-app')
const TIMEOUT_MS = 10 * 60_000
const suiteStarted = Date.now()
const say = (line: string) => process.stdout.write(`[compose new-app] ${line}\n`)
const measured: string[] = []
const note = (line: string) => {
  measured.push(line)
  say(line)
}

/** orders.inventoryPing: answered by an inventory instance, which `instance` names. */
const INVENTORY_PING: LoopTarget = {
  path: 'inventoryPing',
  input: (n) => ({ name: `n${n}` }),
  servedBy: (data) => (data as { instance?: string } | undefined)?.instance,
}

let workDir: string | undefined
let engine: DockerEngine | undefined
let images: HostImages
let app: string
let etcd: string
let probe: PhoneBookProbe | undefined
const project = `fwnewapp${process.pid}`
const env = (): NodeJS.ProcessEnv => {
  const { ETCD_ENDPOINTS: _e, FRAMEWORK_NAMESPACE: _n, ...rest } = process.env
  return { ...rest, COMPOSE_PROJECT_NAME: project, NO_COLOR: '1' }
}

/** The app's installed CLI (node_modules/.bin/framework), output kept in the log dir. */
function framework(args: string[], timeoutMs = 120_000) {
  const started = Date.now()
  const result = spawnSync(join(app, 'node_modules/.bin/framework'), args, {
    cwd: app,
    env: env(),
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 * 2 ** 20,
  })
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`
  appendFileSync(join(LOG_DIR, 'commands.log'), `\n$ framework ${args.join(' ')}\n${output}`)
  return { code: result.status, stdout: result.stdout ?? '', output, ms: Date.now() - started }
}

/** The same, without blocking this process: etcd watch events keep arriving while it runs. */
function frameworkAsync(
  args: string[],
  timeoutMs = 120_000,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(app, 'node_modules/.bin/framework'), args, {
      cwd: app,
      env: env(),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    const collect = (chunk: Buffer) => {
      output += chunk.toString()
    }
    child.stdout.on('data', collect)
    child.stderr.on('data', collect)
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs)
    child.once('error', reject)
    child.once('close', (code) => {
      clearTimeout(timer)
      appendFileSync(join(LOG_DIR, 'commands.log'), `\n$ framework ${args.join(' ')}\n${output}`)
      resolve({ code, output })
    })
  })
}

function theProbe(): PhoneBookProbe {
  if (!probe) throw new Error('the probe is made in beforeAll')
  return probe
}

/** The project's containers (found by compose's label), with their service and state. */
function containers(): ContainerState[] {
  const ids = spawnSync(
    'docker',
    ['ps', '--all', '--quiet', '--filter', `label=com.docker.compose.project=${project}`],
    { encoding: 'utf8', timeout: 30_000 },
  )
    .stdout.split('\n')
    .filter(Boolean)
  return inspectContainers(ids)
}

const devFlags = () => [
  '--network',
  'host',
  '--base-image',
  images.node,
  '--etcd-image',
  images.etcd,
  '--etcd-port',
  new URL(etcd).port,
  '--replicas',
  'inventory=2',
]

describe('a framework new app in docker compose (real engine, host network)', () => {
  beforeAll(async () => {
    workDir = realpathSync(mkdtempSync(join(tmpdir(), 'framework-new-app-')))
    rmSync(LOG_DIR, { recursive: true, force: true })
    mkdirSync(LOG_DIR, { recursive: true })
    say(`logs: ${LOG_DIR}`)
    ensureDockerTools(say)
    engine = await DockerEngine.ensure(LOG_DIR, say)
    if (!composeCommand()) throw new Error('no compose (v2 plugin or v1 docker-compose)')
    images = hostImages(workDir, say)
    const tarball = packFramework()
    app = join(workDir, NAMESPACE)
    runChecked(process.execPath, [CLI, 'new', app, '--framework', tarball, '--skip-install'], {
      cwd: workDir,
    })
    runChecked('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], {
      cwd: app,
      timeoutMs: 300_000,
    })
    expect(framework(['generate', 'service', 'inventory']).code).toBe(0)
    expect(framework(['generate', 'service', 'orders', '--deps', 'inventory']).code).toBe(0)
    etcd = `http://127.0.0.1:${await freePortPair()}`
    probe = new PhoneBookProbe(etcd, NAMESPACE)
  }, TIMEOUT_MS)

  afterAll(async () => {
    probe?.close()
    try {
      if (workDir && containers().length > 0) {
        const logs = spawnSync('docker', ['ps', '-a'], { encoding: 'utf8' })
        writeFileSync(join(LOG_DIR, 'containers.txt'), logs.stdout)
        framework(['down'], 120_000)
        const left = containers().map((c) => c.id)
        if (left.length > 0) runChecked('docker', ['rm', '--force', ...left])
      }
    } finally {
      engine?.removeBuiltImages('shop-*:dev', say)
      await engine?.stop()
      if (workDir) rmSync(workDir, { recursive: true, force: true })
      for (const line of measured) say(`measured: ${line}`)
      say(`suite wall time: ${((Date.now() - suiteStarted) / 1000).toFixed(1)} s`)
    }
  }, 5 * 60_000)

  it('dev --detach: lean images (no tsx, TypeScript or sources; uid 1000; node is PID 1), all healthy', () => {
    const dev = framework(['dev', '--detach', ...devFlags()], TIMEOUT_MS)
    expect(dev.code, dev.output).toBe(0)
    note(`framework dev --detach (build, up, all healthy): ${(dev.ms / 1000).toFixed(1)} s`)
    expect(dev.output).toMatch(/5 containers healthy/)
    const sizes = /images \(node, production dependencies, bundles\): (.*)/.exec(dev.output)?.[1]
    expect(sizes).toMatch(/shop-orders:dev \d+ MB/)
    note(`image sizes: ${sizes}`)

    const orders = containers().find((c) => c.service === 'orders')!
    // The image has node and sh, not coreutils: the checks are node one-liners.
    const inside = (script: string) =>
      spawnSync('docker', ['exec', orders.id, 'node', '-e', script], { encoding: 'utf8' })
    // The runtime stage: production dependencies and bundles, nothing to build or run TypeScript.
    const lean = inside(
      `const has = require('fs').existsSync
       const missing = ['.framework/build/orders.mjs', 'node_modules/framework/dist'].filter((p) => !has(p))
       const extra = ['node_modules/tsx', 'node_modules/typescript', 'node_modules/esbuild', 'node_modules/vitest', 'services'].filter(has)
       if (missing.length || extra.length) { console.error('missing', missing, 'extra', extra); process.exit(1) }`,
    )
    expect(lean.status, lean.stderr).toBe(0)
    expect(inside('console.log(process.getuid())').stdout.trim()).toBe('1000')
    // node is PID 1 (sh exec'd it), so the engine's SIGTERM reaches the instance itself.
    const pid1 = inside(
      "console.log(require('fs').readFileSync('/proc/1/cmdline', 'utf8').split('\\0').join(' '))",
    ).stdout
    expect(pid1).toMatch(
      /^node \S*node_modules\/framework\/dist\/cli\/bin\.js start --built orders/,
    )
  })

  it('a typed call across the two services through framework call', () => {
    const call = framework(['call', 'orders.inventoryPing', '{"name":"ada"}', '--etcd', etcd])
    expect(call.code, call.output).toBe(0)
    const answer = JSON.parse(call.stdout) as { message: string; instance: string }
    expect(answer).toMatchObject({ message: 'hello ada' })
    expect(answer.instance).toMatch(/^inventory-/)
  })

  it('kill -9 of an inventory replica under a bounded call loop: 0 failed queries', async () => {
    const entries = await theProbe().entries()
    const ordersKey = Object.keys(entries).find((key) => key.includes('/services/orders/'))!
    const ordersUrl = (await theProbe().record(ordersKey)).url
    const inventory = containers().filter(
      (c) => c.service === 'inventory' && c.status === 'running',
    )
    expect(inventory).toHaveLength(2)
    const loop = new CallLoop(ordersUrl, 100_000, {
      concurrency: 4,
      maxMs: 60_000,
      pauseMs: 2,
      target: INVENTORY_PING,
    })
    try {
      await loop.reached(200)
      const killedAt = Date.now()
      runChecked('docker', ['kill', inventory[0]!.id])
      await waitFor(
        'one inventory record left',
        async () =>
          Object.keys(await theProbe().entries()).filter((key) => key.includes('/inventory/'))
            .length === 1,
        15_000,
        50,
      )
      await loop.reached(loop.samples.length + 200)
      await loop.stop()
      const afterKill = loop.samples.filter((s) => s.at > killedAt).length
      note(
        `kill -9 of an inventory replica: ${loop.samples.length} calls, ${afterKill} after the kill, ${loop.failures.length} failed`,
      )
      expect(loop.failures).toEqual([])
      expect(afterKill).toBeGreaterThan(200)
    } finally {
      await loop.stop()
    }
  })

  it('framework down: no container left, every key deleted', async () => {
    const keys = Object.keys(await theProbe().entries())
    expect(keys.length).toBeGreaterThanOrEqual(3)
    const deletions = await Deletions.open(theProbe())
    try {
      const down = await frameworkAsync(['down'])
      expect(down.code, down.output).toBe(0)
      expect(containers()).toEqual([])
      expect(keys.filter((key) => !deletions.at.has(key))).toEqual([])
    } finally {
      await deletions.close()
    }
  })

  it('framework dev in the foreground under compose: healthy, then SIGINT stops every container', async () => {
    const started = Date.now()
    const dev: ChildProcess = spawn(
      join(app, 'node_modules/.bin/framework'),
      ['dev', '--no-watch', ...devFlags()],
      { cwd: app, env: env(), stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let output = ''
    const collect = (chunk: Buffer) => {
      output += chunk.toString()
      appendFileSync(join(LOG_DIR, 'foreground-dev.log'), chunk)
    }
    dev.stdout?.on('data', collect)
    dev.stderr?.on('data', collect)
    const exited = new Promise<number | null>((resolve) =>
      dev.once('exit', (code) => resolve(code)),
    )
    try {
      await waitFor(
        'every container healthy',
        () => {
          if (dev.exitCode !== null) throw new Error(`framework dev exited early:\n${output}`)
          const all = containers()
          return all.length === 5 && all.every((c) => c.health === 'healthy')
        },
        TIMEOUT_MS / 2,
        1_000,
      )
      note(`foreground framework dev, all healthy: ${((Date.now() - started) / 1000).toFixed(1)} s`)
      const keys = Object.keys(await theProbe().entries())
      expect(keys).toHaveLength(4)
      const deletions = await Deletions.open(theProbe())
      dev.kill('SIGINT')
      const code = await Promise.race([
        exited,
        new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 120_000)),
      ])
      expect(code, output).not.toBe('timeout')
      // Each instance got SIGTERM from compose's stop and revoked its lease before etcd stopped.
      expect(keys.filter((key) => !deletions.at.has(key))).toEqual([])
      await deletions.close()
      expect(containers().filter((c) => c.status === 'running')).toEqual([])
    } finally {
      if (dev.exitCode === null && dev.signalCode === null) dev.kill('SIGKILL')
      framework(['down'], 120_000)
    }
    expect(containers()).toEqual([])
  })
})
