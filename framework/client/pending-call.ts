import type { StreamCall } from './stream-calls.js'
import type { TransportError } from './transport-error.js'

/** One HTTP answer: status and parsed JSON body (undefined if the body was not JSON). */
export interface HttpAnswer {
  status: number
  body: unknown
}

/** An answer and how long it took from the call being sent (not from waiting for a connection). */
export interface TimedAnswer extends HttpAnswer {
  latencyMs: number
}

/**
 * A call waiting for its answer, sent as a request or on the stream (`abandoned` is called when
 * the caller gives up before the answer; `fail` is the stream's connection failure).
 */
export interface PendingCall extends StreamCall {
  resolve(answer: HttpAnswer): void
  reject(err: TransportError): void
}
