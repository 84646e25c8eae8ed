import type { ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import {
  OVERLOADED_DATA,
  OVERLOADED_STATUS,
  RETRY_AFTER_HEADER,
  RETRY_AFTER_SECONDS,
} from '../protocol/overload.js'
import type { ServerMetrics, ShedTransport } from '../telemetry/server-metrics.js'
import type { Invoker } from './invoker.js'
import type { LoadSampler } from './load.js'

/** At most one "shedding" log line per this interval: under overload, logging is load too. */
const LOG_EVERY_MS = 10_000

export interface InflightLimitOptions {
  /** The instance's one in-flight count (the load figure published in the phone book). */
  load: LoadSampler
  /** The most calls in flight before new ones are shed (`FRAMEWORK_MAX_INFLIGHT`); 0: no limit. */
  max: number
  /** Builds the shed answer's error body in the router's own error shape (once, at boot). */
  refuse: Invoker['refuse']
  log: Logger
  metrics?: ServerMetrics
}

/**
 * The instance's in-flight limit: each transport asks `sheds()` before it parses a call (before
 * reading a request body where it can), in the same tick as the call would start counting in
 * `load.inflight`, so the limit holds exactly. A shed call is answered at once with a fixed
 * answer (protocol/overload.ts) that tells the caller it never ran.
 */
export class InflightLimit {
  /** The shed answer's body as JSON, built once: shedding costs no formatting per call. */
  readonly answerJson: string
  readonly #load: LoadSampler
  readonly #max: number
  readonly #log: Logger
  readonly #metrics: ServerMetrics | undefined
  #shedSinceLog = 0
  #loggedAt = Number.NEGATIVE_INFINITY

  constructor(options: InflightLimitOptions) {
    this.#load = options.load
    this.#max = options.max
    this.#log = options.log
    this.#metrics = options.metrics
    const { body } = options.refuse(
      'SERVICE_UNAVAILABLE',
      `instance over its in-flight limit (${options.max} calls, FRAMEWORK_MAX_INFLIGHT); the call did not run: retry on another instance after ${RETRY_AFTER_SECONDS} s, or add instances`,
    )
    const error = (body as { error: { data?: object } }).error
    this.answerJson = JSON.stringify({
      error: { ...error, data: { ...error.data, ...OVERLOADED_DATA } },
    })
  }

  /** The limit; 0 when there is none. */
  get max(): number {
    return this.#max
  }

  /** Whether the instance is at its limit now (nothing counted: see `sheds`). */
  get full(): boolean {
    return this.#max !== 0 && this.#load.inflight >= this.#max
  }

  /** Whether a call arriving now must be shed (the instance is at its limit); counts it if so. */
  sheds(transport: ShedTransport): boolean {
    if (!this.full) return false
    this.#metrics?.shed(transport)
    this.#shedSinceLog++
    const now = Date.now()
    if (now - this.#loggedAt >= LOG_EVERY_MS) {
      this.#log.warn(
        { inflight: this.#load.inflight, maxInflight: this.#max, shed: this.#shedSinceLog },
        'shedding load: calls over FRAMEWORK_MAX_INFLIGHT answered 503',
      )
      this.#loggedAt = now
      this.#shedSinceLog = 0
    }
    return true
  }

  /** Answers a shed HTTP request: 503, `Retry-After`, and `body` (default: the shed answer). */
  answer(res: ServerResponse, body = this.answerJson): void {
    res.writeHead(OVERLOADED_STATUS, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      [RETRY_AFTER_HEADER]: String(RETRY_AFTER_SECONDS),
    })
    res.end(body)
  }
}
