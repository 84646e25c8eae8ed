import { connect, type Socket } from 'node:net'
import { parseUpgradeAnswer, upgradeRequest } from '../protocol/stream-handshake.js'

/** Longest upgrade answer read before giving up on it (headers only). */
const MAX_HANDSHAKE_BYTES = 16 * 1024
const CONNECT_TIMEOUT_MS = 2_000
/** Frames written at once at most: the service starts on the first ones while more are sent. */
const FLUSH_AT = 16

/** What the socket tells its RPC stream. */
export interface StreamSocketEvents {
  /** The service answered the upgrade with 101: frames may be sent now. */
  open(): void
  /** One line the service sent after the upgrade (a frame, not parsed yet). */
  line(line: string): void
  /**
   * The service answered the upgrade with something else (`status`; undefined: not HTTP, or
   * headers too long). The socket is being destroyed.
   */
  refused(status: string | undefined): void
  /** The socket closed (`err`: why, if it failed). `connected`: TCP had connected. */
  close(err: Error | undefined, connected: boolean): void
}

/**
 * The socket of one RPC stream: connects, sends the upgrade request and reads its answer, then
 * cuts what the service sends into lines; the frames of one tick go out together.
 */
export class StreamSocket {
  readonly #socket: Socket
  readonly #events: StreamSocketEvents
  #upgraded = false
  #connected = false
  #buffer = ''
  #out: string[] = []
  #flushScheduled = false
  /** When bytes last came from the service (performance.now()). */
  lastReceived = 0

  /** `token`: the call token the upgrade request carries (none: call tokens are off). */
  constructor(url: URL, events: StreamSocketEvents, token?: string) {
    this.#events = events
    const socket = connect({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port || 80),
      noDelay: true,
      timeout: CONNECT_TIMEOUT_MS,
    })
    this.#socket = socket
    socket.setEncoding('utf8')
    socket.on('timeout', () => {
      if (!this.#upgraded && !socket.destroyed)
        socket.destroy(
          Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' }),
        )
    })
    socket.once('connect', () => {
      this.#connected = true
      // Dead peers on an idle connection are found by TCP keepalive too.
      socket.setKeepAlive(true, 5_000)
      socket.write(upgradeRequest(url.host, token))
    })
    socket.on('data', (chunk: string) => this.#onData(chunk))
    // 'close' follows every 'error': the stream hears of the end once, with its cause.
    let failure: Error | undefined
    socket.on('error', (err) => {
      failure = err
    })
    socket.on('close', () => this.#events.close(failure, this.#connected))
  }

  /** Queues a frame; it goes out with the others of this tick (in writes of FLUSH_AT). */
  send(frame: string): void {
    this.#out.push(frame)
    if (this.#out.length >= FLUSH_AT) this.flush()
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true
      process.nextTick(() => this.flush())
    }
  }

  /** Writes the queued frames now. */
  flush(): void {
    this.#flushScheduled = false
    if (this.#out.length === 0) return
    const text = this.#out.length === 1 ? this.#out[0]! : this.#out.join('')
    this.#out = []
    this.#socket.write(text)
  }

  /** Writes what is queued and ends the connection. */
  end(): void {
    this.flush()
    this.#socket.end()
    // A peer that never closes its side does not keep the socket.
    setTimeout(() => this.#socket.destroy(), 2_000).unref()
  }

  destroy(err?: Error): void {
    this.#socket.destroy(err)
  }

  #onData(chunk: string): void {
    this.lastReceived = performance.now()
    this.#buffer += chunk
    if (!this.#upgraded && !this.#handshake()) return
    let newline = this.#buffer.indexOf('\n')
    while (newline !== -1) {
      const line = this.#buffer.slice(0, newline)
      this.#buffer = this.#buffer.slice(newline + 1)
      if (line.length > 0) this.#events.line(line)
      newline = this.#buffer.indexOf('\n')
    }
  }

  /** Reads the upgrade answer; true once the stream is open and the buffer holds frames only. */
  #handshake(): boolean {
    const answer = parseUpgradeAnswer(this.#buffer)
    if (answer === undefined) {
      if (this.#buffer.length > MAX_HANDSHAKE_BYTES) this.#refused(undefined)
      return false
    }
    if (answer.status !== '101') {
      this.#refused(answer.status)
      return false
    }
    this.#buffer = this.#buffer.slice(answer.length)
    this.#upgraded = true
    this.#socket.setTimeout(0)
    this.#events.open()
    return true
  }

  #refused(status: string | undefined): void {
    this.#events.refused(status)
    this.#socket.destroy()
  }
}
