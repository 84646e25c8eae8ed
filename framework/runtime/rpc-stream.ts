import { type IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'
import type { Logger } from 'pino'
import { encodeOutcome, type Invoker, type Outcome } from './fast-path.js'

/**
 * The RPC stream: the framework's own clients upgrade one connection per instance
 * (`GET /_rpc/_stream`, `Upgrade: framework-rpc/1`, answered `101`) and then exchange
 * newline-delimited JSON frames on it, many calls in flight at once:
 *
 *   client → service   [id, path, "query"|"mutation", input, deadlineMs]
 *   service → client   [id, status, body]        status and body as tRPC's HTTP answer
 *   service → client   [0, 0, "goaway"]          draining: send nothing more, close when answered
 *   service → client   [0, status, body]         a frame whose id cannot be read: refused, closed
 *
 * A frame that is bad but whose id can be read (not JSON, wrong shape, over the body limit) is
 * answered 400/413 on that id and the connection goes on.
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
  /** Serves GET/HEAD requests that carry some other `Upgrade` header, as plain HTTP/1.1. */
  fallback?: (req: IncomingMessage, res: ServerResponse) => void
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
    #writeBlocked = false
    #paused = false
    /** The id of an oversized frame being skipped up to its newline. */
    #skipping: number | undefined

    constructor(readonly socket: Duplex) {}

    start(head: Buffer): void {
      const socket = this.socket
      // (An http server's socket refuses setEncoding.)
      const decoder = new StringDecoder('utf8')
      socket.on('data', (chunk: Buffer) => this.#onData(decoder.write(chunk)))
      socket.on('end', () => this.#end())
      socket.on('error', () => this.#close())
      socket.on('close', () => this.#close())
      socket.on('drain', () => {
        this.#writeBlocked = false
        this.#flow()
      })
      if (head.length > 0) this.#onData(decoder.write(head))
    }

    goaway(): void {
      this.#write('[0,0,"goaway"]\n')
    }

    #onData(chunk: string): void {
      if (this.#closed) return
      if (this.#skipping !== undefined) {
        const newline = chunk.indexOf('\n')
        if (newline === -1) return
        this.#answer(this.#skipping, tooLarge())
        this.#skipping = undefined
        chunk = chunk.slice(newline + 1)
      }
      this.#buffer += chunk
      // A slice is waiting to run: it takes the new frames too.
      if (!this.#sliceScheduled) this.#runFrames()
      else this.#flow()
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
          this.#flow()
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
      // A frame that never ends must not grow the buffer past the limit: its id (if readable)
      // gets a 413 once its newline comes, and its bytes are dropped until then.
      if (overLimit(this.#buffer)) {
        const id = frameId(this.#buffer)
        if (id === undefined) {
          this.#refuse(tooLarge())
          return
        }
        this.#buffer = ''
        this.#skipping = id
      }
      this.#flow()
    }

    /** Runs one frame; false when it was unreadable and the connection is being refused. */
    #frame(line: string): boolean {
      // A bad frame whose id is readable is answered on that id; only an unreadable one costs
      // the connection (the other calls on it cannot be told apart from it).
      const badFrame = (outcome: Outcome): boolean => {
        const id = frameId(line)
        if (id === undefined) {
          this.#refuse(outcome)
          return false
        }
        this.#answer(id, outcome)
        return true
      }
      if (overLimit(line)) return badFrame(tooLarge())
      let frame: unknown
      try {
        frame = JSON.parse(line)
      } catch (err) {
        return badFrame(
          invoker.refuse(
            'BAD_REQUEST',
            `RPC stream frame is not valid JSON (${(err as Error).message})`,
          ),
        )
      }
      if (!isFrame(frame)) {
        return badFrame(
          invoker.refuse(
            'BAD_REQUEST',
            'an RPC stream frame is [id > 0, path, "query"|"mutation", input, deadlineMs]',
          ),
        )
      }
      const [id, path, kind, input, deadlineMs] = frame
      this.#inflight++
      this.#flow()
      void invoker
        .call(path, kind, input, deadlineMs ?? undefined, 0)
        .catch((err: unknown) => invoker.fail(err, path))
        .then((outcome) => {
          this.#inflight--
          this.#answer(id, outcome, path)
          this.#flow()
        })
      return true
    }

    /** Queues `[id, status, body]`; a body JSON cannot encode (a BigInt, a cycle) becomes a 500. */
    #answer(id: number, outcome: Outcome, path?: string): void {
      const { status, text } = encodeOutcome(invoker, outcome, path)
      this.#write(`[${id},${status},${text}]\n`)
    }

    /** Answers an unreadable frame on id 0 and closes: no call on it can be told apart. */
    #refuse(outcome: Outcome): void {
      log.warn({ status: outcome.status, body: outcome.body }, 'RPC stream frame refused')
      this.#answer(0, outcome)
      this.#buffer = ''
      this.#closed = true
      this.socket.pause()
      this.#flush()
      this.socket.end()
      connections.delete(this)
    }

    /** Reads only while calls running, answers unwritten and frames waiting stay bounded. */
    #flow(): void {
      if (this.#closed) return
      const pause =
        this.#writeBlocked ||
        this.#inflight >= MAX_INFLIGHT_PER_CONNECTION ||
        (this.#sliceScheduled && this.#buffer.length > maxFrameBytes)
      if (pause === this.#paused) return
      this.#paused = pause
      if (pause) this.socket.pause()
      else this.socket.resume()
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
      if (!this.socket.write(text)) {
        this.#writeBlocked = true
        this.#flow()
      }
    }

    /** The client ended its side: answer what is running, then end ours. */
    #end(): void {
      const finish = () => {
        if (this.socket.destroyed) {
          this.#close()
          return
        }
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
      // Not ours (h2c from Java's HttpClient, curl --http2, a websocket): answer as HTTP/1.1.
      if ((req.method === 'GET' || req.method === 'HEAD') && options.fallback) {
        const res = new ServerResponse(req)
        res.shouldKeepAlive = false
        res.assignSocket(socket as Socket)
        res.on('finish', () => {
          res.detachSocket(socket as Socket)
          socket.end()
        })
        options.fallback(req, res)
        return
      }
      socket.end(
        'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: text/plain\r\n\r\n' +
          `this service upgrades only ${STREAM_PATH} to ${STREAM_PROTOCOL}; send ${req.method} requests without an Upgrade header\n`,
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
    const connection = new StreamConnection(socket)
    connections.add(connection)
    connection.start(head)
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

/** The id a frame starts with (`[<id>,`), when it can be read without parsing the frame. */
function frameId(text: string): number | undefined {
  const match = /^\s*\[\s*(\d{1,15})\s*,/.exec(text)
  const id = match ? Number(match[1]) : 0
  return id > 0 ? id : undefined
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
