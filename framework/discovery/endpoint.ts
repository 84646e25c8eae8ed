import type { PhoneBookRecord } from '../registry/record.js'

const EJECT_BASE_MS = 1_000
const EJECT_MAX_MS = 30_000

/**
 * One live instance as a caller sees it: its phone book record plus what this caller counted
 * (requests in flight, calls answered) and decided (ejected until when, after failures). What a
 * balancer measures (latency) it keeps itself.
 */
export class Endpoint {
  /** Requests this caller has in flight to the instance. */
  inflight = 0
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

  /** A successful answer: counted, and any ejection streak ends. */
  succeeded(): void {
    this.calls++
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
