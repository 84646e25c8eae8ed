import { Agent, request } from 'undici'

/** One answered call: when, which cache instance served it, or the failure. */
export interface CallSample {
  at: number
  servedBy?: string
  error?: string
}

/** What a loop calls: a query path, its input for call `n`, and who served answer `n` (undefined = a wrong answer). */
export interface LoopTarget {
  path: string
  input: (n: number) => unknown
  servedBy: (data: unknown, n: number) => string | undefined
}

/** The example app's `api.get`, answered with the cache instance that served it. */
export const API_GET: LoopTarget = {
  path: 'get',
  input: (n) => ({ key: `k${n % 50}` }),
  servedBy: (data) => (data as { servedBy?: string } | undefined)?.servedBy,
}

/**
 * A bounded load loop of one query over HTTP (default `api.get`): `total` calls by `concurrency` workers, stopping
 * early after `maxMs`. Every failure is kept with its message.
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
          this.samples.push(
            servedBy !== undefined
              ? { at: Date.now(), servedBy }
              : {
                  at: Date.now(),
                  error: `${response.statusCode} ${body.error?.message ?? JSON.stringify(body)}`,
                },
          )
        } catch (err) {
          this.samples.push({ at: Date.now(), error: String(err) })
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
