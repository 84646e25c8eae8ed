/**
 * footprint: what one instance and the CLI cost, built vs run through tsx, all in one run.
 *   - RSS of one `cache` instance after 1,000 calls (through `connect()`, as ctx.deps calls it):
 *     built (`dist/` CLI, `start --built`, plain node) vs tsx (`framework start` from TypeScript);
 *     anchor: a Moleculer 0.14 broker with one service (its node compiled to JS, plain node), after
 *     1,000 calls from a client broker; Moleculer 0.15 the same way, shown beside it (the goal
 *     stays against 0.14).
 *   - boot to registered of one instance (spawn → "registered in etcd"), built vs tsx.
 *   - `framework dev --local` all ready vs etcd + 4 bare node:http processes (boot's runs): the
 *     example app with this repo's CLI (all TypeScript, through tsx), and an app made by
 *     `framework new` from the packed framework with its installed CLI (the framework compiled,
 *     only the app's services through tsx), both 3 + 1 instances.
 *   - where an instance's memory goes: each package it loads, imported alone in a fresh node.
 *   - CLI one-shot wall time (`ps`, `call`), built CLI and this repo's tsx CLI, vs `etcdctl get`.
 *   - image size of the example app's images, when a Docker engine answers and they exist.
 * Medians of interleaved rounds. Needs `npm run build` first (the bench runs it).
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { build } from 'esbuild'
import { EtcdServer } from '../framework/cli/local-etcd.js'
import { connect } from '../framework/index.js'
import type cache from '../services/cache/index.js'
import { baselineOnce, devOnce } from './boot.js'
import { BUILT_CLI, ensureBuilt } from './built.js'
import { markdownTable, type SummaryRow, writeResult } from './harness.js'
import { benchEnv, CLI, LoggingChild } from './instance.js'
import { startMoleculer } from './moleculer-client.js'
import type { MoleculerVersion } from './moleculer-package.js'
import { fixed, median, now, REPO_ROOT, sleep } from './support.js'

const ROUNDS = 5
const DEV_ROUNDS = 3
const CALLS = 1_000
const SOURCE_CLI = CLI
const NAMESPACE = 'bench-footprint'
/** The goals of issue 13. */
const RSS_GOAL = 'built ≤ Moleculer anchor'
const DEV_GOAL_RATIO = 1.5
const CLI_GOAL_MS = 300

type Variant = 'built' | 'tsx'

/** What a running instance loads, each measured alone (the framework's runtime dependencies). */
const PACKAGES = [
  'etcd3',
  'undici',
  'zod',
  'express',
  '@trpc/server',
  'pino',
  'commander',
  'prom-client',
]

/** Resident set size of a process, MB (from /proc: what the kernel counts). */
function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1])
  return kb / 1024
}

function startInstance(variant: Variant, etcd: string): LoggingChild {
  const args =
    variant === 'built' ? [BUILT_CLI, 'start', 'cache', '--built'] : [SOURCE_CLI, 'start', 'cache']
  return new LoggingChild(
    spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      env: { ...process.env, ...benchEnv(etcd, NAMESPACE), FRAMEWORK_TTL: '5' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
}

/** Spawn → "registered in etcd", and the RSS after 1,000 calls; the instance is stopped after. */
async function instanceOnce(
  variant: Variant,
  etcd: string,
): Promise<{ registeredMs: number; rssMb: number }> {
  const started = now()
  const instance = startInstance(variant, etcd)
  const connection = connect<{ cache: typeof cache }>({
    deps: { cache: true },
    etcdEndpoints: etcd,
    namespace: NAMESPACE,
  })
  try {
    await instance.waitForLog('registered in etcd', 30_000)
    const registeredMs = now() - started
    const ran = await instance.waitForLog(variant === 'built' ? 'built bundle' : 'from TypeScript')
    if (ran.code !== (variant === 'built' ? 'bundle' : 'typescript'))
      throw new Error(`expected the ${variant} instance, it ran ${String(ran.code)}`)
    // The instance is registered; the client's watch sees it a moment later.
    const resolver = connection.dependencies.resolvers.get('cache')!
    const deadline = Date.now() + 10_000
    while (resolver.endpoints.length === 0 && Date.now() < deadline) await sleep(10)
    await connection.deps.cache.set({ key: 'k', value: 'v' })
    for (let i = 0; i < CALLS; i++) await connection.deps.cache.get({ key: 'k' })
    return { registeredMs, rssMb: rssMb(instance.pid) }
  } finally {
    await connection.close()
    await instance.kill('SIGTERM')
  }
}

/** Moleculer's node compiled to one JS file (packages external), so it runs on plain node. */
async function compiledMoleculerNode(): Promise<string> {
  const outfile = join(REPO_ROOT, '.tmp/bench/moleculer-node.mjs')
  await build({
    entryPoints: [join(REPO_ROOT, 'bench/moleculer-node.ts')],
    outfile,
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    logLevel: 'silent',
  })
  return outfile
}

async function moleculerOnce(script: string, version: MoleculerVersion): Promise<number> {
  const moleculer = await startMoleculer({ script: [script], version })
  try {
    for (let i = 0; i < CALLS; i++) await moleculer.call()
    return rssMb(moleculer.pid)
  } finally {
    await moleculer.close()
  }
}

/** Wall time of one command, spawned and waited for (exit code checked). */
function wallMs(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const started = now()
  const result = spawnSync(command, args, { cwd: REPO_ROOT, env, encoding: 'utf8' })
  const ms = now() - started
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr}${result.stdout}`)
  }
  return ms
}

/** `framework ps` and `framework call` against one running built instance, vs `etcdctl get`. */
async function oneShots(etcd: string): Promise<Record<string, number[]>> {
  const instance = startInstance('built', etcd)
  const times: Record<string, number[]> = {
    'etcdctl get --prefix': [],
    'ps (built CLI)': [],
    'call (built CLI)': [],
    'ps (tsx CLI, this repo)': [],
    'call (tsx CLI, this repo)': [],
  }
  const env = { ...process.env, ETCD_ENDPOINTS: etcd, FRAMEWORK_NAMESPACE: NAMESPACE }
  try {
    await instance.waitForLog('registered in etcd', 30_000)
    const call = ['call', 'cache.get', '{"key":"k"}']
    for (let round = 0; round <= ROUNDS; round++) {
      const sample = {
        'etcdctl get --prefix': wallMs(
          'etcdctl',
          [`--endpoints=${etcd}`, 'get', '--prefix', `/${NAMESPACE}/services/`],
          { ...process.env, ETCDCTL_API: '3' },
        ),
        'ps (built CLI)': wallMs(process.execPath, [BUILT_CLI, 'ps'], env),
        'call (built CLI)': wallMs(process.execPath, [BUILT_CLI, ...call], env),
        'ps (tsx CLI, this repo)': wallMs(process.execPath, [SOURCE_CLI, 'ps'], env),
        'call (tsx CLI, this repo)': wallMs(process.execPath, [SOURCE_CLI, ...call], env),
      }
      // Round 0 warms the file cache (and tsx's transform cache): not counted.
      if (round === 0) continue
      for (const [name, ms] of Object.entries(sample)) times[name]!.push(ms)
    }
    return times
  } finally {
    await instance.kill('SIGTERM')
  }
}

function runChecked(command: string, args: string[], cwd: string): string {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 300_000 })
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed:\n${result.stderr}${result.stdout}`)
  }
  return result.stdout
}

/**
 * An app as users make it: `framework new` with the packed framework, npm install, a `store`
 * service (3 replicas, like the example's cache) and a `front` that calls it (like api).
 */
function generatedApp(): { cwd: string; cli: string; args: string[] } {
  const dir = join(REPO_ROOT, '.tmp/bench/footprint-app')
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(join(REPO_ROOT, '.tmp/bench'), { recursive: true })
  const packed = JSON.parse(
    runChecked(
      'npm',
      ['pack', '--json', '--ignore-scripts', '--pack-destination', '.tmp/bench'],
      REPO_ROOT,
    ),
  ) as { filename: string }[]
  const tarball = join(REPO_ROOT, '.tmp/bench', packed[0]!.filename)
  runChecked(
    process.execPath,
    [SOURCE_CLI, 'new', dir, '--skip-install', '--framework', tarball],
    REPO_ROOT,
  )
  runChecked('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], dir)
  const cli = join(dir, 'node_modules/framework/dist/cli/bin.js')
  runChecked(process.execPath, [cli, 'generate', 'service', 'store'], dir)
  runChecked(process.execPath, [cli, 'generate', 'service', 'front', '--deps', 'store'], dir)
  rmSync(join(dir, 'services/hello'), { recursive: true })
  return { cwd: dir, cli, args: ['--replicas', 'store=3'] }
}

/** RSS and V8 heap a package adds to a bare node process, imported alone (after a full GC). */
function packageCost(name: string): { rssMb: number; heapMb: number } {
  const script = `const base = process.memoryUsage(); await import(${JSON.stringify(name)}); gc(); const m = process.memoryUsage(); console.log(JSON.stringify({ rssMb: (m.rss - base.rss) / 2 ** 20, heapMb: (m.heapUsed - base.heapUsed) / 2 ** 20 }))`
  const out = runChecked(
    process.execPath,
    ['--expose-gc', '--input-type=module', '-e', script],
    REPO_ROOT,
  )
  return JSON.parse(out) as { rssMb: number; heapMb: number }
}

/** Sizes of the example app's images, if a Docker engine answers and `framework dev` built them. */
function imageSizes(): string {
  const images = ['framework-cache:dev', 'framework-api:dev']
  const sizes = images.map((image) => {
    const inspect = spawnSync('docker', ['image', 'inspect', '--format', '{{.Size}}', image], {
      encoding: 'utf8',
      timeout: 10_000,
    })
    return inspect.status === 0 ? `${image} ${Math.round(Number(inspect.stdout) / 1e6)} MB` : ''
  })
  const found = sizes.filter(Boolean)
  return found.length > 0
    ? found.join(', ')
    : 'not measured (no Docker engine or no images here; npm run test:compose prints them)'
}

export async function run(): Promise<{ table: string; summary: SummaryRow[] }> {
  // The built variants run the package's dist/ and the example's bundles.
  ensureBuilt()
  const moleculerScript = await compiledMoleculerNode()
  const app = generatedApp()
  const etcd = await EtcdServer.start()
  const instances: Record<Variant, { registeredMs: number; rssMb: number }[]> = {
    built: [],
    tsx: [],
  }
  const moleculer: number[] = []
  const moleculer15: number[] = []
  const dev: { allReadyMs: number }[] = []
  const devApp: { allReadyMs: number }[] = []
  const base: { allReadyMs: number }[] = []
  let cli: Record<string, number[]>
  try {
    for (let round = 0; round < ROUNDS; round++) {
      instances.built.push(await instanceOnce('built', etcd.endpoint))
      instances.tsx.push(await instanceOnce('tsx', etcd.endpoint))
      moleculer.push(await moleculerOnce(moleculerScript, '0.14'))
      moleculer15.push(await moleculerOnce(moleculerScript, '0.15'))
    }
    cli = await oneShots(etcd.endpoint)
  } finally {
    await etcd.dispose()
  }
  for (let round = 0; round < DEV_ROUNDS; round++) {
    base.push(await baselineOnce())
    dev.push(await devOnce())
    devApp.push(await devOnce(app))
  }
  const images = imageSizes()
  const packages = Object.fromEntries(PACKAGES.map((name) => [name, packageCost(name)]))

  const rss = (variant: Variant) => median(instances[variant].map((r) => r.rssMb))
  const boot = (variant: Variant) => median(instances[variant].map((r) => r.registeredMs))
  const anchor = median(moleculer)
  const anchor15 = median(moleculer15)
  const devMs = median(dev.map((r) => r.allReadyMs))
  const devAppMs = median(devApp.map((r) => r.allReadyMs))
  const baseMs = median(base.map((r) => r.allReadyMs))
  const etcdctl = median(cli['etcdctl get --prefix']!)
  const list = (values: number[], digits = 0) => values.map((v) => fixed(v, digits)).join(', ')
  const rows: (string | number)[][] = [
    [
      `RSS after ${CALLS} calls, MB`,
      'cache, built (plain node)',
      fixed(rss('built'), 1),
      list(
        instances.built.map((r) => r.rssMb),
        1,
      ),
      `Moleculer 0.14 broker + 1 service ${fixed(anchor, 1)}`,
      `${fixed(rss('built') / anchor)}×`,
    ],
    [
      '',
      'cache, tsx',
      fixed(rss('tsx'), 1),
      list(
        instances.tsx.map((r) => r.rssMb),
        1,
      ),
      `Moleculer 0.14 ${fixed(anchor, 1)}`,
      `${fixed(rss('tsx') / anchor)}×`,
    ],
    ['', 'Moleculer 0.14 anchor', fixed(anchor, 1), list(moleculer, 1), '—', '1.00×'],
    [
      '',
      'Moleculer 0.15',
      fixed(anchor15, 1),
      list(moleculer15, 1),
      `Moleculer 0.14 ${fixed(anchor, 1)}`,
      `${fixed(anchor15 / anchor)}×`,
    ],
    [
      'boot → registered, ms',
      'cache, built',
      fixed(boot('built'), 0),
      list(instances.built.map((r) => r.registeredMs)),
      `tsx ${fixed(boot('tsx'), 0)}`,
      `${fixed(boot('built') / boot('tsx'))}×`,
    ],
    [
      '',
      'cache, tsx',
      fixed(boot('tsx'), 0),
      list(instances.tsx.map((r) => r.registeredMs)),
      '—',
      '—',
    ],
    [
      'dev --local all ready, ms',
      'example app (3 cache, 1 api)',
      fixed(devMs, 0),
      list(dev.map((r) => r.allReadyMs)),
      `etcd + 4 bare node:http ${fixed(baseMs, 0)}`,
      `${fixed(devMs / baseMs)}×`,
    ],
    [
      '',
      'generated app, installed CLI (3 store, 1 front)',
      fixed(devAppMs, 0),
      list(devApp.map((r) => r.allReadyMs)),
      `etcd + 4 bare node:http ${fixed(baseMs, 0)}`,
      `${fixed(devAppMs / baseMs)}×`,
    ],
    ...Object.entries(cli).map(([name, values]) => [
      'CLI one-shot wall, ms',
      name,
      fixed(median(values), 0),
      list(values),
      name.startsWith('etcdctl') ? '—' : `etcdctl ${fixed(etcdctl, 0)}`,
      name.startsWith('etcdctl') ? '1.00×' : `${fixed(median(values) / etcdctl, 1)}×`,
    ]),
    ['image size', 'example app images', images, '—', '—', '—'],
    ...Object.entries(packages).map(([name, cost]) => [
      'loaded alone: RSS / heap, MB',
      name,
      `${fixed(cost.rssMb, 1)} / ${fixed(cost.heapMb, 1)}`,
      '—',
      'bare node',
      '—',
    ]),
  ]
  const table = markdownTable(
    [
      'figure',
      'variant',
      'median',
      `runs (${ROUNDS}; dev ${DEV_ROUNDS})`,
      'baseline (same run)',
      'ratio',
    ],
    rows,
  )
  const psMs = median(cli['ps (built CLI)']!)
  const callMs = median(cli['call (built CLI)']!)
  const verdict = (met: boolean) => (met ? 'met' : 'missed')
  const summary: SummaryRow[] = [
    {
      benchmark: 'footprint',
      figure: `RSS of a built instance after ${CALLS} calls`,
      framework: `${fixed(rss('built'), 1)} MB (tsx ${fixed(rss('tsx'), 1)} MB)`,
      baseline: `Moleculer 0.14 broker + 1 service ${fixed(anchor, 1)} MB (0.15: ${fixed(anchor15, 1)} MB)`,
      ratio: `${fixed(rss('built') / anchor)}×`,
      goal: `${RSS_GOAL}: ${verdict(rss('built') <= anchor)}`,
    },
    {
      benchmark: 'footprint',
      figure: 'boot → registered, one instance',
      framework: `built ${fixed(boot('built'), 0)} ms`,
      baseline: `tsx ${fixed(boot('tsx'), 0)} ms`,
      ratio: `${fixed(boot('built') / boot('tsx'))}×`,
      goal: 'no goal',
    },
    {
      benchmark: 'footprint',
      figure: `framework dev --local, all ready (median of ${DEV_ROUNDS})`,
      framework: `${fixed(devMs, 0)} ms`,
      baseline: `etcd + 4 bare node:http processes ${fixed(baseMs, 0)} ms`,
      ratio: `${fixed(devMs / baseMs)}×`,
      goal: `≤ ${DEV_GOAL_RATIO}×: ${verdict(devMs / baseMs <= DEV_GOAL_RATIO)}`,
    },
    {
      benchmark: 'footprint',
      figure: `dev --local all ready, generated app with its installed CLI (median of ${DEV_ROUNDS})`,
      framework: `${fixed(devAppMs, 0)} ms`,
      baseline: `etcd + 4 bare node:http processes ${fixed(baseMs, 0)} ms`,
      ratio: `${fixed(devAppMs / baseMs)}×`,
      goal: `≤ ${DEV_GOAL_RATIO}×: ${verdict(devAppMs / baseMs <= DEV_GOAL_RATIO)}`,
    },
    {
      benchmark: 'footprint',
      figure: 'CLI one-shot wall time (built CLI)',
      framework: `ps ${fixed(psMs, 0)} ms, call ${fixed(callMs, 0)} ms`,
      baseline: `etcdctl get ${fixed(etcdctl, 0)} ms`,
      ratio: `${fixed(psMs / etcdctl, 1)}×, ${fixed(callMs / etcdctl, 1)}×`,
      goal: `≤ ${CLI_GOAL_MS} ms: ${verdict(Math.max(psMs, callMs) <= CLI_GOAL_MS)}`,
    },
  ]
  writeResult('footprint', {
    loadAverage: loadavg(),
    rounds: ROUNDS,
    calls: CALLS,
    instances,
    moleculer,
    moleculer15,
    dev,
    devGeneratedApp: devApp,
    baseline: base,
    packages,
    cli,
    images,
    summary,
  })
  return { table, summary }
}
