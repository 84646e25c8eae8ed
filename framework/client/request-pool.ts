import type { Pool } from 'undici'
import { BEFORE_CONNECTED } from './transport-error.js'

/**
 * undici, loaded the first time a call travels as a request. Callers whose instances all speak
 * the RPC stream (every framework service) never load it: ~110 modules and ~20 MB of memory less
 * in each instance, and in `framework call`.
 */
let undici: Promise<typeof import('undici')> | undefined

/** The keep-alive connections of requests to one instance, opened at the first request. */
export class RequestPool {
  #pool: Promise<Pool> | undefined

  constructor(readonly origin: string) {}

  /** The pool, made on first use. */
  get(): Promise<Pool> {
    undici ??= import('undici')
    this.#pool ??= undici.then(({ Pool, buildConnector }) => {
      const connector = buildConnector({ timeout: 2_000 })
      return new Pool(this.origin, {
        connections: 64,
        keepAliveTimeout: 10_000,
        // Errors of connecting are marked: the request was not written (transport-error.ts).
        connect: (options, callback) =>
          connector(options, (err, socket) => {
            if (err) {
              Object.defineProperty(err, BEFORE_CONNECTED, { value: true })
              callback(err, null)
            } else callback(null, socket)
          }),
      })
    })
    return this.#pool
  }

  /** Closes once the requests handed to it are answered (nothing to do if none ever was). */
  async close(): Promise<void> {
    if (this.#pool) await (await this.#pool).close()
  }

  /** Closes now, failing what is in flight. */
  async destroy(): Promise<void> {
    if (this.#pool) await (await this.#pool).destroy()
  }
}
