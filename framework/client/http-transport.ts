import { Pool } from 'undici'
import type { ProcedureKind } from '../service/manifest.js'

/** Header carrying the caller's remaining deadline (ms) to the callee, for its own nested calls. */
export const DEADLINE_HEADER = 'x-deadline-ms'

/** Connection errors raised before any byte of the request could have reached a server. */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
])

/** One HTTP answer: status and parsed JSON body (undefined if the body was not JSON). */
export interface HttpAnswer {
  status: number
  body: unknown
}

/** The request got no HTTP answer. `sent: false` proves the server never saw it. */
export class TransportError extends Error {
  constructor(
    message: string,
    readonly reason: 'connect' | 'timeout' | 'aborted',
    readonly sent: boolean,
    options?: { cause: unknown },
  ) {
    super(message, options)
    this.name = 'TransportError'
  }
}

function errorCode(err: unknown): string | undefined {
  let current: unknown = err
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string' && code !== 'UND_ERR_ABORTED') return code
    current = current.cause
  }
  return undefined
}

/**
 * tRPC's HTTP protocol (no transformer) over undici: a keep-alive pool per instance URL.
 * Query: `GET <url>/trpc/<path>?input=<json>`; mutation: `POST <url>/trpc/<path>` with a JSON body.
 */
export class HttpTransport {
  readonly #pools = new Map<string, { pool: Pool; basePath: string }>()

  async send(
    url: string,
    kind: ProcedureKind,
    path: string,
    input: unknown,
    deadlineMs: number,
    signal: AbortSignal,
    timedOut: () => boolean,
  ): Promise<HttpAnswer> {
    const { pool, basePath } = this.#pool(url)
    const json = input === undefined ? undefined : JSON.stringify(input)
    const headers: Record<string, string> = {
      [DEADLINE_HEADER]: String(Math.max(0, Math.floor(deadlineMs))),
    }
    let requestPath = `${basePath}/trpc/${path}`
    if (kind === 'query') {
      if (json !== undefined) requestPath += `?input=${encodeURIComponent(json)}`
    } else {
      headers['content-type'] = 'application/json'
    }
    try {
      const response = await pool.request({
        method: kind === 'query' ? 'GET' : 'POST',
        path: requestPath,
        headers,
        body: kind === 'mutation' ? (json ?? '') : undefined,
        signal,
      })
      const text = await response.body.text()
      let body: unknown
      try {
        body = JSON.parse(text)
      } catch {
        body = undefined
      }
      return { status: response.statusCode, body }
    } catch (err) {
      if (signal.aborted) {
        const reason = timedOut() ? 'timeout' : 'aborted'
        throw new TransportError(`${reason} calling ${url}`, reason, true, { cause: err })
      }
      const code = errorCode(err)
      const message = err instanceof Error ? err.message : String(err)
      throw new TransportError(
        `cannot reach ${url}: ${code ?? message}`,
        'connect',
        !NOT_SENT_CODES.has(code ?? ''),
        { cause: err },
      )
    }
  }

  /** Closes the pool of an instance that left the phone book. */
  release(url: string): void {
    const entry = this.#pools.get(url)
    if (!entry) return
    this.#pools.delete(url)
    void entry.pool.close().catch(() => undefined)
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()]
    this.#pools.clear()
    await Promise.all(pools.map(({ pool }) => pool.destroy().catch(() => undefined)))
  }

  #pool(url: string): { pool: Pool; basePath: string } {
    let entry = this.#pools.get(url)
    if (!entry) {
      const parsed = new URL(url)
      entry = {
        pool: new Pool(parsed.origin, {
          connections: 64,
          keepAliveTimeout: 10_000,
          connect: { timeout: 2_000 },
        }),
        basePath: parsed.pathname.replace(/\/$/, ''),
      }
      this.#pools.set(url, entry)
    }
    return entry
  }
}
