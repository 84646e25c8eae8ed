import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

/**
 * How long after the instance left the phone book (its record revoked) an idle HTTP connection
 * stays open. Callers that read the phone book stop using the instance well within it (their
 * watch sees the delete in milliseconds) and close their connections; closing one earlier could
 * reset a request a caller was writing, which it could not tell from a request that ran.
 */
export const IDLE_CONNECTION_GRACE_MS = 1_000

/**
 * The HTTP side of a graceful stop: requests being read, run or answered, and the connections a
 * caller may still write a request on (upgraded RPC streams are the stream server's). While
 * draining, every answer closes its connection, so callers open no new request on it.
 */
export class HttpDrain {
  #requests = 0
  readonly #connections = new Set<Socket>()
  #stopping = false
  /** When the instance's record was gone from the phone book (epoch ms). */
  #leftAt: number | undefined
  readonly #requestDone = () => {
    this.#requests--
  }

  constructor(server: Server) {
    server.on('connection', (socket: Socket) => {
      this.#connections.add(socket)
      socket.once('close', () => this.#connections.delete(socket))
    })
    server.on('upgrade', (_req: IncomingMessage, socket: Socket) => {
      this.#connections.delete(socket)
    })
  }

  /** Counts a request until its answer is done (call first thing in the request listener). */
  track(res: ServerResponse): void {
    this.#requests++
    res.once('close', this.#requestDone)
    if (this.#stopping) res.shouldKeepAlive = false
  }

  /** The instance is stopping: answers close their connections from now on. */
  start(): void {
    this.#stopping = true
  }

  /**
   * The record is gone from the phone book (revoked): callers learn it from now on, so the
   * grace for idle connections starts here, not when the stop began (a revoke can take seconds).
   */
  leftPhoneBook(): void {
    this.#leftAt ??= Date.now()
  }

  /** Requests open, or connections open while callers may still be writing on them. */
  get busy(): boolean {
    if (this.#requests > 0) return true
    if (this.#connections.size === 0) return false
    return this.#leftAt === undefined || Date.now() < this.#leftAt + IDLE_CONNECTION_GRACE_MS
  }

  get requests(): number {
    return this.#requests
  }

  get connections(): number {
    return this.#connections.size
  }
}
