import type { CallMetadata } from '../protocol/metadata.js'
import type { ProcedureKind } from '../protocol/procedure-kind.js'
import { encodeFrameInput } from '../protocol/stream-frames.js'

/** What a stream call needs from the transport's pending call. */
export interface StreamCall {
  kind: ProcedureKind
  path: string
  input: unknown
  deadlineMs: number
  /** Sent with the call (request id, caller); undefined or empty: nothing is added. */
  metadata: CallMetadata | undefined
  /** The caller's call token for the instance's role (protocol/call-token.ts); none when off. */
  token: string | undefined
  settled: boolean
  /** When the call was written to a connection (performance.now()); unset while it waits for one. */
  sentAt: number | undefined
  /** The id of the frame that carried it (on the RPC stream), once sent. */
  frameId: number
  /** Called with the call when its caller gives up on it before the answer. */
  abandoned: ((call: StreamCall) => void) | undefined
  resolve(answer: { status: number; body: unknown }): void
  /** The connection failed. `sent`: the frame may have reached the service. `cause`: the error. */
  fail(message: string, sent: boolean, cause?: unknown): void
  /**
   * The instance is leaving (goaway, 503 on the upgrade, gone from the phone book) and the call
   * was not written: it goes to another instance.
   */
  reroute(message: string): void
  /** JSON cannot carry the call's input: it fails here, nothing written. */
  refuse(message: string, cause?: unknown): void
}

/**
 * The call's input as JSON ('null' for none), or undefined after failing the call as not sent
 * when JSON cannot carry it (a BigInt, a cycle, a function): checked before anything is written.
 */
export function inputJson(call: StreamCall): string | undefined {
  let json: string | undefined
  try {
    json = encodeFrameInput(call.input)
  } catch (err) {
    call.refuse(`the input of ${call.path} is not JSON: ${(err as Error).message}`, err)
    return undefined
  }
  if (json === undefined)
    call.refuse(`the input of ${call.path} is not JSON (a function or a symbol)`)
  return json
}

/**
 * The calls of one RPC stream: those waiting for the upgrade, and those sent, by frame id, until
 * their answer comes (or the caller gives up on them).
 */
export class StreamCalls<C extends StreamCall> {
  readonly #sent = new Map<number, C>()
  #waiting: C[] = []
  #nextId = 1

  /** Calls sent or waiting. */
  get size(): number {
    return this.#sent.size + this.#waiting.length
  }

  /** Calls waiting for the stream to open. */
  get waiting(): number {
    return this.#waiting.length
  }

  /** Calls sent and not answered yet. */
  get sent(): number {
    return this.#sent.size
  }

  /** Holds a call until the stream is open; a caller giving up on it takes it out. */
  wait(call: C): void {
    this.#waiting.push(call)
    call.abandoned = () => {
      this.#waiting = this.#waiting.filter((waiting) => waiting !== call)
    }
  }

  /** The calls that were waiting, taken out. */
  takeWaiting(): C[] {
    const waiting = this.#waiting
    this.#waiting = []
    return waiting
  }

  /** An id for a frame (calls and probes alike). */
  nextId(): number {
    return this.#nextId++
  }

  /** Records a call as sent on frame `id`. */
  add(id: number, call: C): void {
    this.#sent.set(id, call)
  }

  /** The call sent on `id`, taken out; undefined if it was answered or given up on. */
  take(id: number): C | undefined {
    const call = this.#sent.get(id)
    if (call) this.#sent.delete(id)
    return call
  }

  /** Takes out the call sent on `id`; false if it was not there. */
  remove(id: number): boolean {
    return this.#sent.delete(id)
  }

  /** Every call sent and not answered, taken out. */
  takeSent(): C[] {
    const sent = [...this.#sent.values()]
    this.#sent.clear()
    return sent
  }
}
