/**
 * Key routing (the `hash` balancer): 100,000 keys over N = 3, 5, 10 instances, with the
 * framework's own rendezvous hashing (framework/discovery/balancers/rendezvous.ts). Measured:
 * the share of keys that move when one instance joins or leaves (goal ≤ 1.1/N; 1/N is the least
 * any scheme can move), the spread (max/mean keys per instance, goal ≤ 1.15), and the time per
 * pick. Baseline in the same run: modulo-N hashing over the same key hashes, what a hand-rolled
 * `instances[hash % N]` does.
 */
import { hashString, rendezvous } from '../framework/discovery/balancers/rendezvous.js'
import { markdownTable, type SummaryRow, writeResult } from './harness.js'

const KEYS = 100_000
const SIZES = [3, 5, 10]

interface Instance {
  id: string
  hash: number
}

function instances(n: number, prefix: string): Instance[] {
  // Ids as the runtime makes them: role + 10 hex digits.
  return Array.from({ length: n }, (_, i) => {
    const id = `cache-${prefix}${i.toString(16).padStart(9, '0')}`
    return { id, hash: hashString(id) }
  })
}

type Placement = (keyHash: number, set: Instance[]) => Instance

const hrw: Placement = (keyHash, set) => rendezvous(keyHash, set, (instance) => instance.hash)!
const modulo: Placement = (keyHash, set) => set[keyHash % set.length]!

function place(placement: Placement, keyHashes: Uint32Array, set: Instance[]): string[] {
  return Array.from(keyHashes, (keyHash) => placement(keyHash, set).id)
}

function moved(before: string[], after: string[]): number {
  let count = 0
  for (let i = 0; i < before.length; i++) if (before[i] !== after[i]) count++
  return count / before.length
}

function spread(placed: string[], n: number): number {
  const counts = new Map<string, number>()
  for (const id of placed) counts.set(id, (counts.get(id) ?? 0) + 1)
  return Math.max(...counts.values()) / (placed.length / n)
}

export async function run(): Promise<{ table: string; summary: SummaryRow[] }> {
  const keyHashes = Uint32Array.from({ length: KEYS }, (_, i) => hashString(`user:${i}`))
  const rows: (string | number)[][] = []
  const results = []
  const summary: SummaryRow[] = []
  for (const n of SIZES) {
    const set = instances(n, 'a')
    const joined = [...set, ...instances(1, 'b')]
    const left = set.slice(1)
    const figures: Record<string, { join: number; leave: number; spread: number }> = {}
    for (const [name, placement] of [
      ['rendezvous (framework)', hrw],
      ['modulo N (baseline)', modulo],
    ] as const) {
      const base = place(placement, keyHashes, set)
      figures[name] = {
        join: moved(base, place(placement, keyHashes, joined)),
        leave: moved(base, place(placement, keyHashes, left)),
        spread: spread(base, n),
      }
    }
    const started = performance.now()
    let sink = 0
    for (let round = 0; round < 5; round++) {
      for (const keyHash of keyHashes) sink ^= hrw(keyHash, set).hash
    }
    const nsPerPick = ((performance.now() - started) * 1e6) / (5 * KEYS)
    const ideal = 1 / n
    const framework = figures['rendezvous (framework)']!
    const baseline = figures['modulo N (baseline)']!
    for (const [name, f] of Object.entries(figures)) {
      rows.push([
        name,
        n,
        `${(f.join * 100).toFixed(1)}% (${(f.join / (1 / (n + 1))).toFixed(2)}/(N+1))`,
        `${(f.leave * 100).toFixed(1)}% (${(f.leave / ideal).toFixed(2)}/N)`,
        f.spread.toFixed(3),
        name.startsWith('rendezvous') ? nsPerPick.toFixed(0) : '–',
      ])
    }
    // (sink is kept so the timed loop cannot be optimised away.)
    results.push({ n, keys: KEYS, figures, nsPerPick, sink })
    const worstMove = Math.max(framework.leave / ideal, framework.join / (1 / (n + 1)))
    summary.push(
      {
        benchmark: 'hash-balance',
        figure: `keys moved when 1 of N=${n} leaves / 1 joins (× 1/N)`,
        framework: `${(framework.leave / ideal).toFixed(2)} / ${(framework.join / (1 / (n + 1))).toFixed(2)}`,
        baseline: `modulo N: ${(baseline.leave / ideal).toFixed(2)} / ${(baseline.join / (1 / (n + 1))).toFixed(2)}`,
        ratio: (framework.leave / baseline.leave).toFixed(2),
        goal: `≤ 1.1: ${worstMove <= 1.1 ? 'met' : 'missed'}`,
      },
      {
        benchmark: 'hash-balance',
        figure: `max/mean keys per instance, N=${n}`,
        framework: framework.spread.toFixed(3),
        baseline: `modulo N: ${baseline.spread.toFixed(3)}`,
        ratio: (framework.spread / baseline.spread).toFixed(2),
        goal: `≤ 1.15: ${framework.spread <= 1.15 ? 'met' : 'missed'}`,
      },
    )
  }
  writeResult('hash-balance', { results })
  const table = markdownTable(
    ['scheme', 'N', 'moved when 1 joins', 'moved when 1 leaves', 'max/mean keys', 'ns per pick'],
    rows,
  )
  return {
    table: `${KEYS.toLocaleString('en')} keys; "/N" = the share moved over 1/N (1.00 is the least possible).\n\n${table}`,
    summary,
  }
}
