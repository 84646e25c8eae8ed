/** Helpers shared by the propagation, failover, scale and boot benchmarks. */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { resolve } from 'node:path'
import { type Logger, pino } from 'pino'
import { type PhoneBookRecord, RECORD_VERSION } from '../framework/registry/record.js'

export const BENCH_DIR = import.meta.dirname
export const REPO_ROOT = resolve(BENCH_DIR, '..')

/**
 * Epoch milliseconds with sub-millisecond resolution. `performance.timeOrigin` is the wall clock
 * sampled once at process start and `performance.now()` is monotonic since then, so two processes
 * on one machine read the same clock to within microseconds (`clockOffset` measures it).
 */
export function now(): number {
  return performance.timeOrigin + performance.now()
}

export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms))
}

/** Logger for framework objects created inside a benchmark: warnings and errors to stderr. */
export function benchLog(level = 'warn'): Logger {
  return pino({ level }, pino.destination(2))
}

export interface Percentiles {
  n: number
  p50: number
  p99: number
  max: number
  mean: number
}

/** Nearest-rank percentiles of `values` (milliseconds), rounded to 0.01. */
export function percentiles(values: readonly number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (p: number) =>
    sorted.length === 0
      ? Number.NaN
      : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
  const round = (value: number) => Math.round(value * 100) / 100
  const sum = sorted.reduce((total, value) => total + value, 0)
  return {
    n: sorted.length,
    p50: round(at(50)),
    p99: round(at(99)),
    max: round(sorted[sorted.length - 1] ?? Number.NaN),
    mean: round(sum / Math.max(1, sorted.length)),
  }
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN
}

export function fixed(value: number, digits = 2): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a'
}

/** Messages a bench child process sends over IPC: `{ type, ...fields }`. */
export type ChildMessage = { type: string; [field: string]: unknown }

/**
 * A benchmark helper process (`node --import tsx bench/<script>`), driven over IPC. Its stdout
 * and stderr are kept for error messages.
 */
export class BenchChild {
  readonly child: ChildProcess
  readonly messages: ChildMessage[] = []
  readonly exited: Promise<number | null>
  output = ''
  #waiters: { type: string; resolve: (message: ChildMessage) => void }[] = []

  constructor(
    script: string,
    options: { args?: string[]; env?: Record<string, string>; nodeArgs?: string[] } = {},
  ) {
    this.child = spawn(
      process.execPath,
      [
        ...(options.nodeArgs ?? []),
        '--import',
        'tsx',
        resolve(BENCH_DIR, script),
        ...(options.args ?? []),
      ],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, ...options.env },
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      },
    )
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-20_000)
    }
    this.child.stdout?.on('data', keep)
    this.child.stderr?.on('data', keep)
    this.child.on('message', (message: ChildMessage) => {
      this.messages.push(message)
      this.#waiters = this.#waiters.filter((waiter) => {
        if (waiter.type !== message.type) return true
        waiter.resolve(message)
        return false
      })
    })
    this.exited = once(this.child, 'exit').then(([code]) => code as number | null)
  }

  get pid(): number {
    return this.child.pid as number
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  send(message: ChildMessage): void {
    this.child.send(message)
  }

  /** The first message of `type` (already received or next), or an error after `timeoutMs`. */
  next(type: string, timeoutMs: number, after = 0): Promise<ChildMessage> {
    const seen = this.messages.slice(after).find((message) => message.type === type)
    if (seen) return Promise.resolve(seen)
    return new Promise((resolveMessage, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`bench child gave no '${type}' within ${timeoutMs} ms:\n${this.output}`))
      }, timeoutMs)
      const exit = () => {
        clearTimeout(timer)
        reject(new Error(`bench child exited before '${type}':\n${this.output}`))
      }
      this.child.once('exit', exit)
      this.#waiters.push({
        type,
        resolve: (message) => {
          clearTimeout(timer)
          this.child.off('exit', exit)
          resolveMessage(message)
        },
      })
    })
  }

  /** Sends `signal` to this child (by pid) if it still runs, and waits for it to exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    if (this.running) this.child.kill(signal)
    return this.exited
  }
}

/**
 * The offset of a child's clock (`now()`) against ours, from the IPC ping with the shortest round
 * trip: offset = child − midpoint, uncertain by ± rtt/2. The child must answer `{ type: 'ping' }`
 * with `{ type: 'pong', at: now() }`.
 */
export async function clockOffset(
  child: BenchChild,
  pings = 20,
): Promise<{ offsetMs: number; rttMs: number }> {
  let best = { offsetMs: Number.NaN, rttMs: Number.POSITIVE_INFINITY }
  for (let i = 0; i < pings; i++) {
    const after = child.messages.length
    const sent = now()
    child.send({ type: 'ping' })
    const pong = await child.next('pong', 5_000, after)
    const received = now()
    const rttMs = received - sent
    if (rttMs < best.rttMs) best = { offsetMs: (pong.at as number) - (sent + received) / 2, rttMs }
  }
  return {
    offsetMs: Math.round(best.offsetMs * 1000) / 1000,
    rttMs: Math.round(best.rttMs * 1000) / 1000,
  }
}

/** Answers `clockOffset` pings, in a bench child. */
export function answerPings(): void {
  process.on('message', (message: ChildMessage) => {
    if (message.type === 'ping') process.send?.({ type: 'pong', at: now() })
  })
}

/** Sums of etcd's Prometheus counters at `/metrics`, by metric name plus optional label filter. */
export class EtcdMetrics {
  constructor(private readonly lines: string[]) {}

  static async scrape(endpoint: string): Promise<EtcdMetrics> {
    const response = await fetch(`${endpoint}/metrics`, { signal: AbortSignal.timeout(5_000) })
    return new EtcdMetrics((await response.text()).split('\n'))
  }

  /** Sum of every series of `name` whose labels contain each of `labels` (`key="value"`). */
  sum(name: string, ...labels: string[]): number {
    let total = 0
    for (const line of this.lines) {
      if (line.startsWith('#')) continue
      const space = line.lastIndexOf(' ')
      const series = line.slice(0, space)
      const bare = series.indexOf('{') >= 0 ? series.slice(0, series.indexOf('{')) : series
      if (bare !== name) continue
      if (!labels.every((label) => series.includes(label))) continue
      total += Number(line.slice(space + 1))
    }
    return total
  }
}

/** A valid phone book record for instances that serve nothing (registration-only benchmarks). */
export function sampleRecord(role: string, id: string): PhoneBookRecord {
  return {
    v: RECORD_VERSION,
    role,
    id,
    url: 'http://127.0.0.1:9',
    version: '0.1.0',
    contract: 'c0ffee00c0ffee00',
    procedures: { get: 'query', set: 'mutation', del: 'mutation', stats: 'query' },
    load: { inflight: 0, eventLoopDelayMs: 0, cpu: 0, rss: 64 * 1024 * 1024 },
    startedAt: new Date().toISOString(),
    host: 'bench',
    pid: process.pid,
  }
}
