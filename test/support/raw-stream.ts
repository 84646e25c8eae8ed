import { once } from 'node:events'
import { connect, type Socket } from 'node:net'

/** One answer frame of the RPC stream: `[id, status, body]` (`[0, 0, "goaway"]` when draining). */
export type Answer = [
  number,
  number,
  { result?: { data: unknown }; error?: { message: string; data: { code: string } } } | string,
]

/**
 * A raw RPC stream connection to a service, as another language's client would open it:
 * upgrade, then frames in and answers out (parsed, in arrival order).
 */
export class RawStream {
  readonly answers: Answer[] = []
  readonly socket: Socket
  #buffer = ''
  #upgraded = false
  head = ''

  private constructor(port: number) {
    this.socket = connect({ host: '127.0.0.1', port })
    this.socket.setEncoding('utf8')
    this.socket.on('error', () => undefined)
    this.socket.on('data', (chunk: string) => {
      this.#buffer += chunk
      if (!this.#upgraded) {
        const end = this.#buffer.indexOf('\r\n\r\n')
        if (end === -1) return
        this.head = this.#buffer.slice(0, end)
        this.#buffer = this.#buffer.slice(end + 4)
        this.#upgraded = true
      }
      // Refused: what follows is a plain-text body, not frames.
      if (!this.head.startsWith('HTTP/1.1 101 ')) return
      let newline = this.#buffer.indexOf('\n')
      while (newline !== -1) {
        this.answers.push(JSON.parse(this.#buffer.slice(0, newline)) as Answer)
        this.#buffer = this.#buffer.slice(newline + 1)
        newline = this.#buffer.indexOf('\n')
      }
    })
  }

  /** Connects to `baseUrl`'s port and sends the upgrade request; resolves once it is answered. */
  static async open(
    baseUrl: string,
    path = '/_rpc/_stream',
    protocol = 'framework-rpc/1',
    method = 'GET',
    /** More header lines of the upgrade request (a call token). */
    headers: Record<string, string> = {},
  ): Promise<RawStream> {
    const stream = new RawStream(Number(new URL(baseUrl).port))
    await once(stream.socket, 'connect')
    const extra = Object.entries(headers)
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('')
    stream.socket.write(
      `${method} ${path} HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: ${protocol}\r\n${extra}\r\n`,
    )
    await waitUntil(() => stream.head !== '', 'the upgrade answer')
    return stream
  }

  send(text: string): void {
    this.socket.write(text)
  }

  /** Whether a goaway frame has come. */
  get goneAway(): boolean {
    return this.answers.some(([id, status, body]) => id === 0 && status === 0 && body === 'goaway')
  }

  async closed(): Promise<boolean> {
    if (this.socket.closed) return true
    return Promise.race([
      once(this.socket, 'close').then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 3_000)),
    ])
  }
}

export async function waitUntil(
  check: () => boolean,
  what: string,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
