import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string }
  children?: number[]
}

export interface CpuProfile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

const STARTUP = 'startup (module loading, tsx)'
/** Categories left out of the busy time: waiting, and loading modules at startup. */
const NOT_BUSY = new Set(['idle', STARTUP])

/** Where a sampled function lives, by its name and script URL (first match wins). */
const CATEGORIES: [string, (frame: ProfileNode['callFrame']) => boolean][] = [
  ['idle', (f) => f.functionName === '(idle)'],
  [
    STARTUP,
    (f) =>
      /node:internal\/(modules|bootstrap|source_map|deps\/cjs-module-lexer)|\/node_modules\/(tsx|esbuild|@?protobufjs|@grpc)\//.test(
        f.url,
      ),
  ],
  ['garbage collection', (f) => f.functionName === '(garbage collector)'],
  [
    'socket writes (writev, write*String: syscalls)',
    (f) => f.url === '' && /^(writev|write\w*String|writeBuffer)$/.test(f.functionName),
  ],
  [
    'framework gateway (routing, edge checks, answers)',
    (f) => /\/(framework|dist)\/gateway\//.test(f.url),
  ],
  [
    'framework client (balancer, RPC stream, retries)',
    (f) => /\/(framework|dist)\/(client|discovery|protocol)\//.test(f.url),
  ],
  [
    'framework runtime (stream, invoker, ctx)',
    (f) => /\/(framework|dist)\/(runtime|service|registry)\//.test(f.url),
  ],
  ['framework telemetry (metrics, spans)', (f) => /\/(framework|dist)\/telemetry\//.test(f.url)],
  [
    "service bundle (the service's code, framework parts it imports)",
    (f) => f.url.includes('/.framework/build/'),
  ],
  ['tRPC (procedure runner, errors)', (f) => f.url.includes('/node_modules/@trpc/')],
  ['prom-client', (f) => f.url.includes('/node_modules/prom-client/')],
  ['OpenTelemetry', (f) => f.url.includes('/node_modules/@opentelemetry/')],
  ['pino (logs)', (f) => /\/node_modules\/(pino|sonic-boom|thread-stream)/.test(f.url)],
  ['zod (input check)', (f) => f.url.includes('/node_modules/zod/')],
  ['node http server (parse, respond)', (f) => /node:(_http|internal\/http|http)/.test(f.url)],
  [
    'node net, streams, events, timers, ticks',
    (f) =>
      /node:(net|stream|events|timers|internal\/(stream|streams|timers|net|process|async_hooks|event))/.test(
        f.url,
      ) || f.functionName === 'runMicrotasks',
  ],
  ['JSON parse / stringify', (f) => f.url === '' && /^(parse|stringify)$/.test(f.functionName)],
  ['V8 / other native', (f) => f.url === ''],
]

/**
 * Each sampled node's category. A node called, however deeply, from module loading counts as
 * startup whatever it is itself (a native `readFileUtf8` under the ESM loader is startup, not
 * work per call); otherwise its own frame decides.
 */
function categorize(profile: CpuProfile): (id: number) => string | undefined {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id)
  const cache = new Map<number, string>()
  const startupMatch = CATEGORIES.find(([name]) => name === STARTUP)![1]
  const underStartup = (id: number): boolean => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const node = byId.get(at)
      if (node && startupMatch(node.callFrame)) return true
    }
    return false
  }
  return (id) => {
    const node = byId.get(id)
    if (!node) return undefined
    let category = cache.get(id)
    if (category === undefined) {
      category = underStartup(id)
        ? STARTUP
        : (CATEGORIES.find(([, match]) => match(node.callFrame))?.[0] ?? 'other JavaScript')
      cache.set(id, category)
    }
    return category
  }
}

/**
 * Self time of a `--cpu-prof` profile by category: ms, and share of the busy time (not idle,
 * not module loading at startup).
 */
export function profileBreakdown(
  profile: CpuProfile,
): { category: string; ms: number; busyShare: number }[] {
  const categoryOf = categorize(profile)
  const totals = new Map<string, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    const category = categoryOf(profile.samples[i]!)
    if (category === undefined) continue
    totals.set(category, (totals.get(category) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000)
  }
  const busy = [...totals]
    .filter(([category]) => category !== 'idle')
    .reduce((a, [, ms]) => a + ms, 0)
  return [...totals]
    .map(([category, ms]) => ({
      category,
      ms: Math.round(ms),
      busyShare: NOT_BUSY.has(category) ? Number.NaN : ms / busy,
    }))
    .sort((a, b) => b.ms - a.ms)
}

/** The one `.cpuprofile` a process wrote into `dir`. */
export function readProfile(dir: string): CpuProfile {
  const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'))
  if (!file) throw new Error(`no .cpuprofile in ${dir}`)
  return JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile
}

/** The `n` functions with the most self time (idle, GC and startup left out), busy share each. */
export function topFunctions(
  profile: CpuProfile,
  n: number,
): { name: string; where: string; ms: number; busyShare: number }[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const categoryOf = categorize(profile)
  const totals = new Map<string, { name: string; where: string; ms: number }>()
  let busy = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!)
    const category = categoryOf(profile.samples[i]!)
    if (!node || category === undefined || NOT_BUSY.has(category)) continue
    const ms = (profile.timeDeltas[i] ?? 0) / 1000
    busy += ms
    const { functionName, url } = node.callFrame
    // The file, shortened to the part after node_modules/ or the repo's folders.
    const where = url
      .replace(/^.*\/node_modules\//, '')
      .replace(/^.*\/(\.framework\/build|dist|framework|services)\//, '$1/')
    const key = `${functionName} ${where}`
    const entry = totals.get(key) ?? { name: functionName || '(anonymous)', where, ms: 0 }
    entry.ms += ms
    totals.set(key, entry)
  }
  return [...totals.values()]
    .sort((a, b) => b.ms - a.ms)
    .slice(0, n)
    .map((entry) => ({ ...entry, ms: Math.round(entry.ms), busyShare: entry.ms / busy }))
}
