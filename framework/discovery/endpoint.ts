import type { PhoneBookRecord } from '../registry/record.js'

const EWMA_DECAY = 0.3
const EJECT_BASE_MS = 1_000
const EJECT_MAX_MS = 30_000

/**
 * One live instance as a caller sees it: its phone book record plus what this caller measured
 * (requests in flight, latency EWMA) and decided (ejected until when, after failures).
 */
export class Endpoint {
  /** Requests this caller has in flight to the instance. */
  inflight = 0
  /** Latency EWMA of successful calls, ms (0 until the first call). */
  latencyMs = 0
  /** Calls answered by this instance (for stats and balancing tests). */
  calls = 0
  /** Epoch ms until which the instance is ejected (passive health). */
  ejectedUntil = 0
  /** Consecutive ejections; the backoff doubles with each. */
  ejections = 0

  constructor(
    readonly key: string,
    public record: PhoneBookRecord,
  ) {}

  get id(): string {
    return this.record.id
  }

  get url(): string {
    return this.record.url
  }

  isEjected(now: number): boolean {
    return this.ejectedUntil > now
  }

  /** A successful answer: feeds the latency EWMA and ends any ejection streak. */
  succeeded(latencyMs: number): void {
    this.calls++
    this.latencyMs =
      this.latencyMs === 0 ? latencyMs : this.latencyMs + EWMA_DECAY * (latencyMs - this.latencyMs)
    this.ejections = 0
  }

  /** Takes the instance out of rotation for a backoff that grows on repeat. */
  eject(now: number): number {
    const backoffMs = Math.min(EJECT_MAX_MS, EJECT_BASE_MS * 2 ** this.ejections)
    this.ejections++
    this.ejectedUntil = now + backoffMs
    return backoffMs
  }
}
