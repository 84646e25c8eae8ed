import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string }
}

interface CpuProfile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

/** Where a sampled function lives, by its script URL (first match wins). */
const CATEGORIES: [string, (frame: ProfileNode['callFrame']) => boolean][] = [
  ['idle', (f) => f.functionName === '(idle)'],
  ['garbage collection', (f) => f.functionName === '(garbage collector)'],
  [
    'framework gateway (routing, edge checks, answers)',
    (f) => f.url.includes('/framework/gateway/'),
  ],
  [
    'framework client (balancer, RPC stream, retries)',
    (f) => /\/framework\/(client|discovery|protocol)\//.test(f.url),
  ],
  ['zod (input check at the edge)', (f) => f.url.includes('/node_modules/zod/')],
  ['node http server (parse, respond)', (f) => /node:(_http|internal\/http|http)/.test(f.url)],
  [
    'node net, streams, timers',
    (f) =>
      /node:(net|internal\/(stream|streams|timers|net|process|async_hooks)|stream|events|timers|internal\/event)/.test(
        f.url,
      ),
  ],
  ['JSON parse / stringify', (f) => f.url === '' && /^(parse|stringify)$/.test(f.functionName)],
  ['V8 / native (program)', (f) => f.functionName === '(program)' || f.url === ''],
]

/** Self time of a `--cpu-prof` profile by category: ms and share of the busy (non-idle) time. */
export function profileBreakdown(
  profile: CpuProfile,
): { category: string; ms: number; busyShare: number }[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const totals = new Map<string, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!)
    if (!node) continue
    const category =
      CATEGORIES.find(([, match]) => match(node.callFrame))?.[0] ?? 'other JavaScript'
    totals.set(category, (totals.get(category) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000)
  }
  const busy = [...totals]
    .filter(([category]) => category !== 'idle')
    .reduce((a, [, ms]) => a + ms, 0)
  return [...totals]
    .map(([category, ms]) => ({
      category,
      ms: Math.round(ms),
      busyShare: category === 'idle' ? Number.NaN : ms / busy,
    }))
    .sort((a, b) => b.ms - a.ms)
}

/** The one `.cpuprofile` a process wrote into `dir`. */
export function readProfile(dir: string): CpuProfile {
  const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'))
  if (!file) throw new Error(`no .cpuprofile in ${dir}`)
  return JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile
}
