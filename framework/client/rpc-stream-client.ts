import { connect, type Socket } from 'node:net'

/** See runtime/rpc-stream.ts for the protocol. */
const STREAM_PATH = '/_rpc/_stream'
const STREAM_PROTOCOL = 'framework-rpc/1'
/** Longest upgrade answer read before giving up on it (headers only). */
const MAX_HANDSHAKE_BYTES = 16 * 1024
const CONNECT_TIMEOUT_MS = 2_000
/** Frames written at once at most: the service starts on the first ones while more are sent. */
const FLUSH_AT = 16
/** How long a liveness probe may go unanswered before the connection is dropped. */
const PROBE_TIMEOUT_MS = 2_000

/** What a stream call needs from the transport's pending call. */
export interface StreamCall {
  kind: 'query' | 'mutation'
  path: string
  input: unknown
  deadlineMs: number
  settled: boolean
  /** When the call was written to a connection (performance.now()); unset while it waits for one. */
  sentAt: number | undefined
  abandoned: (() => void) | undefined
  resolve(answer: { status: number; body: unknown }): void
  /** `sent`: the frame may have reached the service. `code`: the connection error, if any. */
  fail(message: string, sent: boolean, cause?: unknown): void
}

export type StreamState = 'connecting' | 'open' | 'draining' | 'closed'

/**
 * One upgraded connection to one instance, many calls in flight on it. Calls made before the
 * upgrade is answered wait for it; if the service does not speak the stream (a peer in another
 * language, an older version) they are handed back unsent through `onUnsupported`.
 */
export class RpcStreamClient<C extends StreamCall = StreamCall> {
  state: StreamState = 'connecting'
  readonly #socket: Socket
  readonly #pending = new Map<number, C>()
  #waiting: C[] = []
  #nextId = 1
  #out: string[] = []
  #flushScheduled = false
  #buffer = ''
  #closeWhenIdle = false
  #connected = false
  /** When bytes last came from the service (performance.now()). */
  #lastReceived = 0
  #probeTimer: NodeJS.Timeout | undefined

  constructor(
    readonly url: URL,
    private readonly onUnsupported: (calls: C[]) => void,
  ) {
    const socket = connect({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port || 80),
      noDelay: true,
      timeout: CONNECT_TIMEOUT_MS,
    })
    this.#socket = socket
    socket.setEncoding('utf8')
    socket.on('timeout', () => {
      if (this.state === 'connecting')
        socket.destroy(
          Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' }),
        )
    })
    socket.once('connect', () => {
      this.#connected = true
      // Dead peers on an idle connection are found by TCP keepalive too.
      socket.setKeepAlive(true, 5_000)
      socket.write(
        `GET ${STREAM_PATH} HTTP/1.1\r\nhost: ${url.host}\r\nconnection: upgrade\r\nupgrade: ${STREAM_PROTOCOL}\r\n\r\n`,
      )
    })
    socket.on('data', (chunk: string) => this.#onData(chunk))
    socket.on('error', (err) => this.#onClose(err))
    socket.on('close', () => this.#onClose(undefined))
  }

  /** Calls in flight or waiting on this connection. */
  get busy(): number {
    return this.#pending.size + this.#waiting.length
  }

  send(call: C): void {
    if (this.state === 'connecting') {
      this.#waiting.push(call)
      call.abandoned = () => {
        this.#waiting = this.#waiting.filter((waiting) => waiting !== call)
      }
      return
    }
    if (this.state !== 'open') {
      call.fail(`connection to ${this.url.origin} is closing`, false)
      return
    }
    let input: string | undefined
    try {
      input = call.input === undefined ? 'null' : JSON.stringify(call.input)
    } catch (err) {
      input = undefined
      call.fail(`the input of ${call.path} is not JSON: ${(err as Error).message}`, false, err)
      return
    }
    if (input === undefined) {
      call.fail(`the input of ${call.path} is not JSON (a function or a symbol)`, false)
      return
    }
    const id = this.#nextId++
    const sentAt = performance.now()
    call.sentAt = sentAt
    this.#pending.set(id, call)
    call.abandoned = () => {
      if (!this.#pending.delete(id)) return
      // Given up on (a timeout) with nothing heard since it was sent: a slow procedure, or a
      // connection that died without saying so (a black-holed peer). Probe to tell them apart.
      if (this.#lastReceived < sentAt) this.#probe()
      this.#maybeEnd()
    }
    const deadline = Number.isFinite(call.deadlineMs) ? call.deadlineMs : 'null'
    this.#out.push(`[${id},${JSON.stringify(call.path)},"${call.kind}",${input},${deadline}]\n`)
    if (this.#out.length >= FLUSH_AT) this.#flush()
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true
      // The frames of this tick go out together (in writes of FLUSH_AT).
      process.nextTick(() => this.#flush())
    }
  }

  /**
   * Sends a frame for the empty path (every service answers it, with NOT_FOUND); if no byte comes
   * back within PROBE_TIMEOUT_MS the connection is dropped, failing its calls (as sent) so they
   * are retried or reported, and the next call reconnects.
   */
  #probe(): void {
    if (this.#probeTimer || this.state !== 'open') return
    const sentAt = performance.now()
    this.#out.push(`[${this.#nextId++},"","query",null,null]\n`)
    this.#flush()
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined
      if (this.#lastReceived < sentAt && this.state !== 'closed') {
        this.#socket.destroy(
          Object.assign(new Error('no answer on the RPC stream'), { code: 'ETIMEDOUT' }),
        )
      }
    }, PROBE_TIMEOUT_MS)
    this.#probeTimer.unref()
  }

  /** Ends the connection once nothing is in flight (the instance left the phone book). */
  closeWhenIdle(): void {
    this.#closeWhenIdle = true
    if (this.state === 'open') this.state = 'draining'
    this.#maybeEnd()
  }

  destroy(): void {
    this.#socket.destroy()
  }

  #flush(): void {
    this.#flushScheduled = false
    if (this.#out.length === 0) return
    const text = this.#out.length === 1 ? this.#out[0]! : this.#out.join('')
    this.#out = []
    this.#socket.write(text)
  }

  #onData(chunk: string): void {
    this.#lastReceived = performance.now()
    this.#buffer += chunk
    if (this.state === 'connecting' && !this.#handshake()) return
    let newline = this.#buffer.indexOf('\n')
    while (newline !== -1) {
      const line = this.#buffer.slice(0, newline)
      this.#buffer = this.#buffer.slice(newline + 1)
      if (line.length > 0) this.#answer(line)
      newline = this.#buffer.indexOf('\n')
    }
  }

  /** Reads the upgrade answer; true once the stream is open and the buffer holds frames only. */
  #handshake(): boolean {
    const end = this.#buffer.indexOf('\r\n\r\n')
    if (end === -1) {
      if (this.#buffer.length > MAX_HANDSHAKE_BYTES) this.#unsupported()
      return false
    }
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(this.#buffer)?.[1]
    if (status !== '101') {
      // 503: the instance is draining (try elsewhere); anything else: no stream spoken here.
      if (status === '503') this.#failWaiting(`${this.url.origin} is shutting down`, false)
      else this.#unsupported()
      this.state = 'closed'
      this.#socket.destroy()
      return false
    }
    this.#buffer = this.#buffer.slice(end + 4)
    this.state = 'open'
    this.#socket.setTimeout(0)
    const waiting = this.#waiting
    this.#waiting = []
    for (const call of waiting) if (!call.settled) this.send(call)
    if (this.#closeWhenIdle) this.closeWhenIdle()
    return true
  }

  #unsupported(): void {
    const waiting = this.#waiting
    this.#waiting = []
    this.state = 'closed'
    this.#socket.destroy()
    this.onUnsupported(waiting.filter((call) => !call.settled))
  }

  #answer(line: string): void {
    let frame: unknown
    try {
      frame = JSON.parse(line)
    } catch {
      this.#protocolError(`${this.url.origin} sent a frame that is not JSON`)
      return
    }
    if (!Array.isArray(frame) || typeof frame[0] !== 'number' || typeof frame[1] !== 'number') {
      this.#protocolError(`${this.url.origin} sent a malformed frame`)
      return
    }
    const [id, status, body] = frame as [number, number, unknown]
    if (id === 0) {
      if (body === 'goaway') {
        this.state = 'draining'
        this.#maybeEnd()
        return
      }
      const message = (body as { error?: { message?: string } })?.error?.message
      this.#protocolError(`${this.url.origin} refused the RPC stream: ${status} ${message ?? ''}`)
      return
    }
    const call = this.#pending.get(id)
    if (!call) return
    this.#pending.delete(id)
    call.resolve({ status, body })
    this.#maybeEnd()
  }

  #protocolError(message: string): void {
    for (const call of this.#pending.values()) call.fail(message, true)
    this.#pending.clear()
    this.state = 'closed'
    this.#socket.destroy()
  }

  #maybeEnd(): void {
    if (this.state === 'draining' && this.#pending.size === 0) {
      this.state = 'closed'
      this.#flush()
      this.#socket.end()
      // A peer that never closes its side does not keep the socket.
      setTimeout(() => this.#socket.destroy(), 2_000).unref()
    }
  }

  #failWaiting(message: string, sent: boolean, cause?: unknown): void {
    const waiting = this.#waiting
    this.#waiting = []
    for (const call of waiting) call.fail(message, sent, cause)
  }

  #onClose(err: Error | undefined): void {
    const wasConnecting = this.state === 'connecting'
    if (wasConnecting && this.#connected && this.#waiting.length > 0) {
      // Connected, then closed without answering the upgrade: something that does not speak the
      // stream (a proxy dropping unknown upgrades). Requests from now on; these were not sent.
      this.#unsupported()
      return
    }
    this.state = 'closed'
    const reason = err ? ((err as { code?: string }).code ?? err.message) : 'connection closed'
    // Calls not written yet never reached the service; written ones may have.
    this.#failWaiting(`cannot reach ${this.url.origin}: ${reason}`, false, err)
    if (this.#pending.size > 0) {
      const pending = [...this.#pending.values()]
      this.#pending.clear()
      for (const call of pending) {
        call.fail(`connection to ${this.url.origin} lost: ${reason}`, !wasConnecting, err)
      }
    }
  }
}
