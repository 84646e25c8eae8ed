import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'
import type { Logger } from 'pino'
import type { Invoker, Outcome } from './fast-path.js'

/**
 * The RPC stream: the framework's own clients upgrade one connection per instance
 * (`GET /_rpc/_stream`, `Upgrade: framework-rpc/1`, answered `101`) and then exchange
 * newline-delimited JSON frames on it, many calls in flight at once:
 *
 *   client → service   [id, path, "query"|"mutation", input, deadlineMs]
 *   service → client   [id, status, body]        status and body as tRPC's HTTP answer
 *   service → client   [0, 0, "goaway"]          draining: send nothing more, close when answered
 *   service → client   [0, status, body]         the connection is refused (bad frame) and closed
 *
 * Answers come back in completion order. No HTTP parsing per call and one write per tick for
 * all the answers ready, which is what makes it cheaper than a request per call.
 */
export const STREAM_PATH = '/_rpc/_stream'
export const STREAM_PROTOCOL = 'framework-rpc/1'
/** Frames answered on one connection while more are running make the service stop reading. */
const MAX_INFLIGHT_PER_CONNECTION = 1_024
/**
 * Frames started before the answers ready so far are written and other connections get a turn.
 * Small slices pipeline the two ends: the client works on the first answers while this process
 * runs the next frames (measured: 16 gave ~1.3× the calls/s of 256 at 100 concurrent calls).
 */
const SLICE = 16

export interface StreamServerOptions {
  invoker: Invoker
  log: Logger
  /** The longest frame accepted (bytes); the same limit as a request body. */
  maxFrameBytes: number
}

export interface StreamServer {
  /** The http server's `upgrade` listener. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void
  /** Tells every client to stop sending (goaway); connections close once their calls answered. */
  drain(): void
  /** Connections still open. */
  readonly open: number
  /** Closes every connection at once. */
  destroyAll(): void
}

export function createStreamServer(options: StreamServerOptions): StreamServer {
  const { invoker, log, maxFrameBytes } = options
  const connections = new Set<StreamConnection>()
  let draining = false
  // UTF-8 takes at most 3 bytes per UTF-16 unit: count bytes only when it could matter.
  const overLimit = (text: string) =>
    text.length * 3 > maxFrameBytes && Buffer.byteLength(text) > maxFrameBytes
  const tooLarge = () =>
    invoker.refuse(
      'PAYLOAD_TOO_LARGE',
      `RPC stream frame is over ${maxFrameBytes} bytes; send less, or raise FRAMEWORK_MAX_BODY_BYTES on the service`,
    )

  class StreamConnection {
    #buffer = ''
    #inflight = 0
    #out: string[] = []
    #flushScheduled = false
    #closed = false
    #sliceScheduled = false

    constructor(
      readonly socket: Duplex,
      head: Buffer,
    ) {
      // (An http server's socket refuses setEncoding.)
      const decoder = new StringDecoder('utf8')
      socket.on('data', (chunk: Buffer) => this.onData(decoder.write(chunk)))
      if (head.length > 0) this.onData(decoder.write(head))
      socket.on('end', () => this.#end())
      socket.on('error', () => this.#close())
      socket.on('close', () => this.#close())
    }

    goaway(): void {
      this.#write('[0,0,"goaway"]\n')
    }

    onData(chunk: string): void {
      if (this.#closed) return
      this.#buffer += chunk
      // A slice is waiting to run: it takes the new frames too.
      if (!this.#sliceScheduled) this.#runFrames()
    }

    /**
     * Starts the buffered frames, at most SLICE at a time: between slices the answers ready so far
     * are written, so the client works on them while this process starts the next ones.
     */
    #runFrames(): void {
      this.#sliceScheduled = false
      if (this.#closed) return
      let start = 0
      let started = 0
      let newline = this.#buffer.indexOf('\n')
      while (newline !== -1) {
        if (started === SLICE) {
          this.#buffer = this.#buffer.slice(start)
          this.#sliceScheduled = true
          setImmediate(() => this.#runFrames())
          return
        }
        const line = this.#buffer.slice(start, newline)
        start = newline + 1
        if (line.length > 0) {
          started++
          if (!this.#frame(line)) return
        }
        newline = this.#buffer.indexOf('\n', start)
      }
      if (start > 0) this.#buffer = this.#buffer.slice(start)
      // A frame that never ends must not grow the buffer past the limit either.
      if (overLimit(this.#buffer)) this.#refuse(tooLarge())
    }

    /** Runs one frame; false when it was malformed and the connection is being refused. */
    #frame(line: string): boolean {
      if (overLimit(line)) {
        this.#refuse(tooLarge())
        return false
      }
      let frame: unknown
      try {
        frame = JSON.parse(line)
      } catch (err) {
        this.#refuse(
          invoker.refuse(
            'BAD_REQUEST',
            `RPC stream frame is not valid JSON (${(err as Error).message})`,
          ),
        )
        return false
      }
      if (!isFrame(frame)) {
        this.#refuse(
          invoker.refuse(
            'BAD_REQUEST',
            'an RPC stream frame is [id > 0, path, "query"|"mutation", input, deadlineMs]',
          ),
        )
        return false
      }
      const [id, path, kind, input, deadlineMs] = frame
      this.#inflight++
      if (this.#inflight >= MAX_INFLIGHT_PER_CONNECTION) this.socket.pause()
      void invoker
        .call(path, kind, input, deadlineMs ?? undefined, 0)
        .catch((err: unknown) => invoker.fail(err, path))
        .then((outcome) => {
          this.#inflight--
          if (this.#inflight < MAX_INFLIGHT_PER_CONNECTION) this.socket.resume()
          this.#write(`[${id},${outcome.status},${JSON.stringify(outcome.body)}]\n`)
        })
      return true
    }

    /** Answers a bad frame on id 0 and closes: the client cannot know which call it was. */
    #refuse(outcome: Outcome): void {
      log.warn({ status: outcome.status, body: outcome.body }, 'RPC stream frame refused')
      this.#write(`[0,${outcome.status},${JSON.stringify(outcome.body)}]\n`)
      this.#buffer = ''
      this.#closed = true
      this.socket.pause()
      this.#flush()
      this.socket.end()
      connections.delete(this)
    }

    #write(text: string): void {
      if (this.socket.destroyed) return
      this.#out.push(text)
      if (this.#flushScheduled) return
      this.#flushScheduled = true
      // Every answer ready in this tick goes out in one write.
      process.nextTick(() => this.#flush())
    }

    #flush(): void {
      this.#flushScheduled = false
      if (this.#out.length === 0 || this.socket.destroyed) return
      const text = this.#out.length === 1 ? this.#out[0]! : this.#out.join('')
      this.#out = []
      this.socket.write(text)
    }

    /** The client ended its side: answer what is running, then end ours. */
    #end(): void {
      const finish = () => {
        if (this.#inflight > 0 || this.#sliceScheduled) {
          setTimeout(finish, 5)
          return
        }
        this.#flush()
        this.socket.end()
        this.#close()
      }
      finish()
    }

    #close(): void {
      this.#closed = true
      connections.delete(this)
    }
  }

  function accept(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const protocol = String(req.headers.upgrade ?? '').toLowerCase()
    if (req.url !== STREAM_PATH || protocol !== STREAM_PROTOCOL) {
      socket.end(
        'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: text/plain\r\n\r\n' +
          `only ${STREAM_PATH} with upgrade: ${STREAM_PROTOCOL} is served here\n`,
      )
      return
    }
    if (draining) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\r\n')
      return
    }
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: ${STREAM_PROTOCOL}\r\n\r\n`,
    )
    connections.add(new StreamConnection(socket, head))
  }

  return {
    upgrade(req, socket, head) {
      try {
        accept(req, socket, head)
      } catch (err) {
        log.error({ err }, 'RPC stream upgrade failed')
        socket.destroy()
      }
    },
    drain() {
      draining = true
      for (const connection of connections) connection.goaway()
    },
    get open() {
      return connections.size
    },
    destroyAll() {
      for (const connection of connections) connection.socket.destroy()
      connections.clear()
    },
  }
}

type Frame = [
  id: number,
  path: string,
  kind: 'query' | 'mutation',
  input: unknown,
  deadlineMs: number | null | undefined,
]

function isFrame(value: unknown): value is Frame {
  return (
    Array.isArray(value) &&
    Number.isSafeInteger(value[0]) &&
    (value[0] as number) > 0 &&
    typeof value[1] === 'string' &&
    (value[2] === 'query' || value[2] === 'mutation') &&
    (value[4] === undefined || value[4] === null || typeof value[4] === 'number')
  )
}
