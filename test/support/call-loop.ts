import { Agent, request } from 'undici'
import { afterEach } from 'vitest'

/** One answered call: when it was answered, how long it took, who served it, or the failure. */
export interface CallSample {
  /** When the answer (or the failure) came, epoch ms. */
  at: number
  /** From sending the call to its answer. */
  ms: number
  servedBy?: string
  error?: string
}

/**
 * A call answered after this long is counted as failed ("stalled"), however it ends: a call here
 * takes milliseconds, and one that hangs for seconds is an outage, not a success. Generous on
 * purpose (a loaded 2-core machine); how fast calls are is measured in bench/, not here.
 */
export const STALL_MS = 5_000

/** What a loop calls: a query path, its input for call `n`, and who served answer `n` (undefined = a wrong answer). */
export interface LoopTarget {
  path: string
  input: (n: number) => unknown
  servedBy: (data: unknown, n: number) => string | undefined
}

/**
 * The example app's `api.get` of keys nobody sets, answered with the cache instance that served
 * it; an answer that is not a miss (`{ value: null, hit: false }`) is a wrong answer.
 */
export const API_GET: LoopTarget = {
  path: 'get',
  input: (n) => ({ key: `k${n % 50}` }),
  servedBy: (data) => {
    const answer = data as { value?: unknown; hit?: unknown; servedBy?: unknown } | undefined
    if (answer?.value !== null || answer.hit !== false) return undefined
    return typeof answer.servedBy === 'string' ? answer.servedBy : undefined
  },
}

/**
 * A bounded load loop of one query over HTTP (default `api.get`): `total` calls by `concurrency` workers, stopping
 * early after `maxMs`. Every failure is kept with its message: errors, wrong answers, and calls
 * slower than {@link STALL_MS}.
 */
export class CallLoop {
  readonly samples: CallSample[] = []
  readonly done: Promise<void>
  #stopped = false
  readonly #agent = new Agent({ keepAliveTimeout: 10_000, connections: 32 })

  constructor(
    apiUrl: string,
    readonly total: number,
    options: { concurrency?: number; maxMs?: number; pauseMs?: number; target?: LoopTarget } = {},
  ) {
    const { concurrency = 4, maxMs = 60_000, pauseMs = 0, target = API_GET } = options
    const deadline = Date.now() + maxMs
    let issued = 0
    const worker = async () => {
      while (!this.#stopped && issued < total && Date.now() < deadline) {
        const n = issued++
        const input = encodeURIComponent(JSON.stringify(target.input(n)))
        const sentAt = Date.now()
        try {
          const response = await request(`${apiUrl}/trpc/${target.path}?input=${input}`, {
            dispatcher: this.#agent,
            headersTimeout: 15_000,
            bodyTimeout: 15_000,
          })
          const body = (await response.body.json()) as {
            result?: { data: unknown }
            error?: { message: string }
          }
          const servedBy =
            response.statusCode === 200 ? target.servedBy(body.result?.data, n) : undefined
          const at = Date.now()
          const ms = at - sentAt
          if (servedBy === undefined) {
            const error = `${response.statusCode} ${body.error?.message ?? JSON.stringify(body)}`
            this.samples.push({ at, ms, error })
          } else if (ms > STALL_MS) {
            this.samples.push({ at, ms, servedBy, error: `stalled: answered after ${ms} ms` })
          } else {
            this.samples.push({ at, ms, servedBy })
          }
        } catch (err) {
          const at = Date.now()
          this.samples.push({ at, ms: at - sentAt, error: String(err) })
        }
        if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs))
      }
    }
    this.done = Promise.all(Array.from({ length: concurrency }, worker)).then(() =>
      this.#agent.close(),
    )
  }

  get failures(): CallSample[] {
    return this.samples.filter((sample) => sample.error !== undefined)
  }

  /** Calls answered in [from, to) (epoch ms). */
  between(from: number, to = Number.POSITIVE_INFINITY): CallSample[] {
    return this.samples.filter((sample) => sample.at >= from && sample.at < to)
  }

  /** The slowest call so far, ms (0 before any). */
  get slowestMs(): number {
    return this.samples.reduce((max, sample) => Math.max(max, sample.ms), 0)
  }

  /** Resolves once at least `count` calls have been answered. */
  async reached(count: number, timeoutMs = 30_000): Promise<void> {
    const started = Date.now()
    while (this.samples.length < count) {
      if (Date.now() - started > timeoutMs)
        throw new Error(`loop reached only ${this.samples.length} calls`)
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }

  stop(): Promise<void> {
    this.#stopped = true
    return this.done
  }
}

/**
 * For a test file: `track(loop)` stops the loop after the test, whether the test passed or not,
 * so a failed test leaves no load running into the next one.
 */
export function useCallLoops(): (loop: CallLoop) => CallLoop {
  const loops: CallLoop[] = []
  afterEach(async () => {
    await Promise.all(loops.splice(0).map((loop) => loop.stop()))
  })
  return (loop) => {
    loops.push(loop)
    return loop
  }
}
