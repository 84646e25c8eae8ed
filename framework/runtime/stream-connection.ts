import type { Duplex } from 'node:stream'
import { StringDecoder } from 'node:string_decoder'
import type { Logger } from 'pino'
import { encodeAnswer } from '../protocol/answer.js'
import { AUTH_FRAME_PATH } from '../protocol/call-token.js'
import type { CallMetadata } from '../protocol/metadata.js'
import { OVERLOADED_STATUS } from '../protocol/overload.js'
import type { ProcedureKind } from '../protocol/procedure-kind.js'
import { encodeRefusal, frameId, GOAWAY_FRAME, parseCallFrame } from '../protocol/stream-frames.js'
import { CLOCK_TOLERANCE_S, type VerifiedCaller } from '../security/call-token.js'
import type { CallAuth, CallerCheck } from './call-auth.js'
import {
  encodeOutcome,
  type Invoker,
  type Outcome,
  type OutcomeOrPromise,
  settlesLater,
} from './invoker.js'
import type { InflightLimit } from './overload.js'

/** Frames answered on one connection while more are running make the service stop reading. */
const MAX_INFLIGHT_PER_CONNECTION = 1_024
/**
 * Frames started before the answers ready so far are written and other connections get a turn.
 * Small slices pipeline the two ends: the client works on the first answers while this process
 * runs the next frames (measured: 16 gave ~1.3× the calls/s of 256 at 100 concurrent calls).
 */
const SLICE = 16

export interface StreamConnectionOptions {
  invoker: Invoker
  log: Logger
  /** The longest frame accepted (bytes); the same limit as a request body. */
  maxFrameBytes: number
  /** The instance's in-flight limit: a frame over it is answered 503 unparsed. */
  limit?: InflightLimit
  /** Called once the connection is done (closed, or refused and ending). */
  onClose(connection: StreamConnection): void
  /** Call tokens: `_auth` frames renew the connection's token (see #renew). */
  auth?: CallAuth | undefined
}

/** The refusal of a call on a stream whose token expired without a fresh one. */
/**
 * An `_auth` frame, told apart without parsing it: never shed (a renewal refused for load would
 * let the connection's token run out, and the connection with it).
 */
const AUTH_FRAME_START = new RegExp(`^\\[\\d+,"${AUTH_FRAME_PATH}",`)
const STREAM_TOKEN_EXPIRED = `the RPC stream's call token expired; send a fresh one in an ${AUTH_FRAME_PATH} frame before it does`

/**
 * One upgraded RPC stream on the service side (frames: protocol/stream-frames.ts): runs each call
 * frame through the invoker and writes the answers in completion order, every answer ready in a
 * tick in one write. Reads only while calls running, answers unwritten and frames waiting stay
 * bounded.
 */
export class StreamConnection {
  #buffer = ''
  #inflight = 0
  #out: string[] = []
  #flushScheduled = false
  /** Frames are being run (#runFrames): answers queue until the slice is done. */
  #running = false
  #closed = false
  #sliceScheduled = false
  #writeBlocked = false
  #paused = false
  /** The id of an oversized frame being skipped up to its newline. */
  #skipping: number | undefined
  readonly #invoker: Invoker
  readonly #log: Logger
  readonly #maxFrameBytes: number
  readonly #limit: InflightLimit | undefined
  readonly #onClose: (connection: StreamConnection) => void
  readonly #auth: CallAuth | undefined
  /** When the connection's token (checked at the upgrade or in an `_auth` frame) runs out. */
  #expiry: NodeJS.Timeout | undefined

  constructor(
    readonly socket: Duplex,
    options: StreamConnectionOptions,
    /** The caller the upgrade's call token proved (undefined: call tokens are off). */
    private caller?: VerifiedCaller,
  ) {
    this.#invoker = options.invoker
    this.#log = options.log
    this.#maxFrameBytes = options.maxFrameBytes
    this.#limit = options.limit
    this.#onClose = options.onClose
    this.#auth = options.auth?.required ? options.auth : undefined
    this.#watchExpiry()
  }

  /**
   * When the token expires and no fresh one came, the client is told goaway (it opens a new
   * stream with a fresh token for its next call); frames that still come are refused 401 once
   * the clock tolerance is past too.
   */
  #watchExpiry(): void {
    if (this.#expiry) clearTimeout(this.#expiry)
    if (!this.caller) return
    const left = this.caller.expiresAt - Date.now()
    this.#expiry = setTimeout(() => this.goaway(), Math.max(0, left))
    this.#expiry.unref()
  }

  /** The caller of the next frame: the connection's token, unless it expired. */
  #callerNow(): CallerCheck {
    const caller = this.caller
    if (!caller) return this.#auth ? 'call token missing' : undefined
    return Date.now() > caller.expiresAt + CLOCK_TOLERANCE_S * 1000 ? STREAM_TOKEN_EXPIRED : caller
  }

  /** An `_auth` frame: a fresh token for the connection (answered 200, or 401 keeping the old). */
  #renew(id: number, input: unknown): void {
    const auth = this.#auth!
    const token = (input as { token?: unknown } | null)?.token
    const finish = (checked: CallerCheck) => {
      if (typeof checked === 'object') {
        this.caller = checked
        this.#watchExpiry()
        this.#answer(id, {
          status: 200,
          body: { result: { data: { expiresAt: checked.expiresAt } } },
        })
      } else {
        this.#answer(id, this.#invoker.refuseToken(checked ?? 'call token missing'))
      }
      this.#flow()
    }
    const checked = auth.check(typeof token === 'string' ? token : undefined)
    if (checked instanceof Promise) {
      this.#inflight++
      checked.then(
        (result) => {
          this.#inflight--
          finish(result)
        },
        () => {
          this.#inflight--
          finish('call token check failed')
        },
      )
    } else finish(checked)
  }

  /** Starts reading frames; `head` holds the bytes that came with the upgrade request. */
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

  /** Tells the client to stop sending; it closes once its calls are answered. */
  goaway(): void {
    this.#write(GOAWAY_FRAME)
  }

  // UTF-8 takes at most 3 bytes per UTF-16 unit: count bytes only when it could matter.
  #overLimit(text: string): boolean {
    return text.length * 3 > this.#maxFrameBytes && Buffer.byteLength(text) > this.#maxFrameBytes
  }

  #tooLarge(): Outcome {
    return this.#invoker.refuse(
      'PAYLOAD_TOO_LARGE',
      `RPC stream frame is over ${this.#maxFrameBytes} bytes; send less, or raise FRAMEWORK_MAX_BODY_BYTES on the service`,
    )
  }

  #onData(chunk: string): void {
    if (this.#closed) return
    if (this.#skipping !== undefined) {
      const newline = chunk.indexOf('\n')
      if (newline === -1) return
      this.#answer(this.#skipping, this.#tooLarge())
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
   * are written, so the client works on them while this process starts the next ones. The answers
   * of calls that finished at once go out as soon as the slice is done: one write, no tick.
   */
  #runFrames(): void {
    this.#running = true
    try {
      this.#runSlice()
    } finally {
      this.#running = false
      this.#flush()
    }
  }

  #runSlice(): void {
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
    if (this.#overLimit(this.#buffer)) {
      const id = frameId(this.#buffer)
      if (id === undefined) {
        this.#refuse(this.#tooLarge())
        return
      }
      this.#buffer = ''
      this.#skipping = id
    }
    this.#flow()
  }

  /** Runs one frame; false when it was unreadable and the connection is being refused. */
  #frame(line: string): boolean {
    if (this.#overLimit(line)) return this.#badFrame(line, this.#tooLarge())
    // At the instance's limit: answered on its id without parsing the frame (a frame whose id
    // cannot be read goes on to be refused as malformed).
    // (The `_auth` test runs only when the instance is full, not on every frame.)
    if (this.#limit?.full && !AUTH_FRAME_START.test(line) && this.#limit.sheds('stream')) {
      const id = frameId(line)
      if (id !== undefined) {
        this.#write(encodeAnswer(id, OVERLOADED_STATUS, this.#limit.answerJson))
        return true
      }
    }
    const frame = parseCallFrame(line)
    if (typeof frame === 'string')
      return this.#badFrame(line, this.#invoker.refuse('BAD_REQUEST', frame))
    const [id, path, kind, input, deadlineMs, metadata] = frame
    if (path === AUTH_FRAME_PATH && this.#auth) {
      this.#renew(id, input)
      return true
    }
    this.#inflight++
    this.#flow()
    this.#run(id, path, kind, input, deadlineMs ?? undefined, metadata)
    return true
  }

  /**
   * A bad frame whose id is readable is answered on that id; only an unreadable one costs the
   * connection (the other calls on it cannot be told apart from it). False when refused.
   */
  #badFrame(line: string, outcome: Outcome): boolean {
    const id = frameId(line)
    if (id === undefined) {
      this.#refuse(outcome)
      return false
    }
    this.#answer(id, outcome)
    return true
  }

  /**
   * Runs one call and queues its answer: in this tick when the procedure finished synchronously
   * (no promise on the hot path), else when it settles.
   */
  #run(
    id: number,
    path: string,
    kind: ProcedureKind,
    input: unknown,
    deadlineMs: number | undefined,
    metadata: CallMetadata,
  ): void {
    let outcome: OutcomeOrPromise
    try {
      outcome = this.#invoker.call(path, kind, input, deadlineMs, 0, metadata, this.#callerNow())
    } catch (err) {
      // (The invoker answers failures as outcomes; this keeps a bug there from ending the process.)
      outcome = this.#invoker.fail(err, path)
    }
    if (settlesLater(outcome)) {
      outcome.then(
        (settled) => this.#ran(id, settled, path),
        (err: unknown) => this.#ran(id, this.#invoker.fail(err, path), path),
      )
    } else this.#ran(id, outcome, path)
  }

  /** A call's outcome: queued as its answer. */
  #ran(id: number, outcome: Outcome, path: string): void {
    this.#inflight--
    this.#answer(id, outcome, path)
    this.#flow()
  }

  /** Queues `[id, status, body]`; a body JSON cannot encode (a BigInt, a cycle) becomes a 500. */
  #answer(id: number, outcome: Outcome, path?: string): void {
    const { status, text } = encodeOutcome(this.#invoker, outcome, path)
    this.#write(encodeAnswer(id, status, text))
  }

  /** Answers an unreadable frame on id 0 and closes: no call on it can be told apart. */
  #refuse(outcome: Outcome): void {
    this.#log.warn({ status: outcome.status, body: outcome.body }, 'RPC stream frame refused')
    const { status, text } = encodeOutcome(this.#invoker, outcome)
    this.#write(encodeRefusal(status, text))
    this.#buffer = ''
    this.#closed = true
    this.socket.pause()
    this.#flush()
    this.socket.end()
    this.#onClose(this)
  }

  /** Reads only while calls running, answers unwritten and frames waiting stay bounded. */
  #flow(): void {
    if (this.#closed) return
    const pause =
      this.#writeBlocked ||
      this.#inflight >= MAX_INFLIGHT_PER_CONNECTION ||
      (this.#sliceScheduled && this.#buffer.length > this.#maxFrameBytes)
    if (pause === this.#paused) return
    this.#paused = pause
    if (pause) this.socket.pause()
    else this.socket.resume()
  }

  #write(text: string): void {
    if (this.socket.destroyed) return
    this.#out.push(text)
    // While frames run, #runFrames writes what they answered once they are done.
    if (this.#flushScheduled || this.#running) return
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
    if (this.#expiry) clearTimeout(this.#expiry)
    this.#onClose(this)
  }
}
