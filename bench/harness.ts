import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { resolve } from 'node:path'

/** One measured variant: throughput and latency percentiles. */
export interface Measurement {
  name: string
  mode: string
  calls: number
  failed: number
  seconds: number
  callsPerSecond: number
  p50Ms: number
  p99Ms: number
  maxMs: number
  /** Every round's p50, in order (measureInterleaved: the spread behind the median round). */
  roundP50sMs?: number[]
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

/**
 * Runs `call` `total` times with `concurrency` workers, stopping early after `maxMs`
 * (every load loop is bounded in count and time). Latency is per call.
 */
export async function measure(
  name: string,
  mode: string,
  call: () => Promise<unknown>,
  options: { total: number; concurrency: number; maxMs: number },
): Promise<Measurement> {
  const latencies = new Float64Array(options.total)
  let issued = 0
  let done = 0
  let failed = 0
  const deadline = performance.now() + options.maxMs
  const started = performance.now()
  const worker = async () => {
    while (issued < options.total && performance.now() < deadline) {
      issued++
      const t0 = performance.now()
      try {
        await call()
      } catch {
        failed++
      }
      latencies[done++] = performance.now() - t0
    }
  }
  await Promise.all(Array.from({ length: options.concurrency }, worker))
  const seconds = (performance.now() - started) / 1000
  const sorted = latencies.slice(0, done).sort()
  return {
    name,
    mode,
    calls: done,
    failed,
    seconds: Math.round(seconds * 1000) / 1000,
    callsPerSecond: Math.round(done / seconds),
    p50Ms: Math.round(percentile(sorted, 50) * 1000) / 1000,
    p99Ms: Math.round(percentile(sorted, 99) * 1000) / 1000,
    maxMs: Math.round((sorted[sorted.length - 1] ?? Number.NaN) * 1000) / 1000,
  }
}

/** One load shape: a name for the tables and `measure`'s bounds. */
export interface LoadMode {
  mode: string
  concurrency: number
  total: number
  maxMs: number
  /** Interleaved rounds of this mode (default: measureInterleaved's `rounds`). */
  rounds?: number
  /** Which round is the median: by calls/s (default), or by p50 where latency is the figure. */
  medianBy?: 'callsPerSecond' | 'p50Ms'
}

/**
 * Warms every variant up, then measures them in interleaved rounds (variant A, B, …, then A, B, …
 * again) for each mode, so that the machine's drift hits every variant alike; returns the median
 * round of each variant per mode.
 */
export async function measureInterleaved(
  variants: Record<string, () => Promise<unknown>>,
  modes: readonly LoadMode[],
  options: { rounds: number; warmup: { total: number; concurrency: number } },
): Promise<Measurement[]> {
  for (const call of Object.values(variants)) {
    await measure('warmup', 'warmup', call, { ...options.warmup, maxMs: 3_000 })
  }
  const results: Measurement[] = []
  for (const { mode, rounds: modeRounds, medianBy, ...bounds } of modes) {
    const rounds: Record<string, Measurement[]> = {}
    for (let round = 0; round < (modeRounds ?? options.rounds); round++) {
      for (const [name, call] of Object.entries(variants)) {
        rounds[name] = [...(rounds[name] ?? []), await measure(name, mode, call, bounds)]
      }
    }
    for (const name of Object.keys(variants)) {
      const all = rounds[name]!
      results.push({ ...median(all, medianBy), roundP50sMs: all.map((round) => round.p50Ms) })
    }
  }
  return results
}

/** The median measurement of several rounds of the same variant, by calls/s or by p50. */
export function median(
  rounds: Measurement[],
  by: 'callsPerSecond' | 'p50Ms' = 'callsPerSecond',
): Measurement {
  const sorted = [...rounds].sort((a, b) => a[by] - b[by])
  return sorted[Math.floor(sorted.length / 2)]!
}

export function machine() {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    date: new Date().toISOString(),
  }
}

/** One line of the summary `npm run bench` ends with: a figure, its baseline, their ratio, the goal. */
export interface SummaryRow {
  benchmark: string
  figure: string
  framework: string
  baseline: string
  /** framework ÷ baseline, or '–' where there is no baseline. */
  ratio: string
  /** The goal and whether it was met, or 'no goal'. */
  goal: string
}

export function summaryTable(rows: readonly SummaryRow[]): string {
  return markdownTable(
    ['benchmark', 'figure', 'framework', 'baseline (same run)', 'ratio', 'goal'],
    rows.map((row) => [
      row.benchmark,
      row.figure,
      row.framework,
      row.baseline,
      row.ratio,
      row.goal,
    ]),
  )
}

/** The first columns of a table of measurements (`Measurement`'s figures), in this order. */
export const MEASUREMENT_COLUMNS = ['path', 'mode', 'calls/s', 'p50 ms', 'p99 ms', 'failed']

export function markdownTable(headers: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n')
}

/** Writes `bench/results/<name>.json` with the machine description beside the figures. */
export function writeResult(name: string, data: unknown): string {
  const dir = resolve(import.meta.dirname, 'results')
  mkdirSync(dir, { recursive: true })
  const path = resolve(dir, `${name}.json`)
  writeFileSync(
    path,
    `${JSON.stringify({ benchmark: name, machine: machine(), ...(data as object) }, null, 2)}\n`,
  )
  return path
}
