import type { IncomingMessage, ServerResponse } from 'node:http'

/** A client that has this much unsent is too slow to follow: it is dropped (it reconnects). */
const MAX_BUFFERED_BYTES = 1 * 2 ** 20

/**
 * The dashboard's server-sent event streams: every open page gets each event. A client is
 * forgotten as soon as its connection closes (a page closed mid-stream leaves nothing behind),
 * and one that cannot keep up is cut off instead of buffering without bound.
 */
export class SseHub {
  readonly #clients = new Set<ServerResponse>()
  readonly #heartbeat: NodeJS.Timeout

  constructor(heartbeatMs = 15_000) {
    // A comment line keeps proxies and idle timeouts from closing a quiet stream.
    this.#heartbeat = setInterval(() => this.#broadcast(': keepalive\n\n'), heartbeatMs)
    this.#heartbeat.unref()
  }

  /** Streams open now. */
  get size(): number {
    return this.#clients.size
  }

  /** Starts a stream on `res` with the `initial` events, then every event sent. */
  open(req: IncomingMessage, res: ServerResponse, initial: [event: string, data: unknown][]): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    })
    // The browser reconnects a second after a lost stream.
    res.write('retry: 1000\n\n')
    for (const [event, data] of initial) res.write(frame(event, data))
    this.#clients.add(res)
    const forget = () => this.#clients.delete(res)
    res.once('close', forget)
    req.once('close', forget)
  }

  send(event: string, data: unknown): void {
    if (this.#clients.size > 0) this.#broadcast(frame(event, data))
  }

  /** Ends every stream (the server is closing). */
  close(): void {
    clearInterval(this.#heartbeat)
    for (const res of this.#clients) res.end()
    this.#clients.clear()
  }

  #broadcast(text: string): void {
    for (const res of this.#clients) {
      if (res.writableLength > MAX_BUFFERED_BYTES) {
        this.#clients.delete(res)
        res.destroy()
        continue
      }
      res.write(text)
    }
  }
}

function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}
