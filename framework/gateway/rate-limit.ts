/** Clients tracked at most; past it, buckets that are full again are forgotten (then the oldest). */
const MAX_CLIENTS = 100_000

/**
 * A token bucket per client: `burst` calls at once, refilled at `perSecond`. Kept in this
 * process only (the gateway is stateless: N replicas allow N times the rate, each its share).
 */
export class TokenBuckets {
  readonly #buckets = new Map<string, { tokens: number; at: number }>()

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
  ) {}

  /**
   * Takes `count` tokens from `key`'s bucket: 0 when taken, else the milliseconds until enough
   * are back. A batch larger than the bucket needs a full bucket and leaves it in debt.
   */
  take(key: string, count: number, now: number): number {
    if (this.burst === Number.POSITIVE_INFINITY) return 0
    let bucket = this.#buckets.get(key)
    if (bucket === undefined) {
      if (this.#buckets.size >= MAX_CLIENTS) this.#forget(now)
      bucket = { tokens: this.burst, at: now }
      this.#buckets.set(key, bucket)
    } else {
      bucket.tokens = Math.min(
        this.burst,
        bucket.tokens + ((now - bucket.at) * this.perSecond) / 1000,
      )
      bucket.at = now
    }
    const needed = Math.min(count, this.burst)
    if (bucket.tokens >= needed) {
      bucket.tokens -= count
      return 0
    }
    return Math.ceil(((needed - bucket.tokens) * 1000) / this.perSecond)
  }

  get clients(): number {
    return this.#buckets.size
  }

  #forget(now: number): void {
    for (const [key, bucket] of this.#buckets) {
      if (bucket.tokens + ((now - bucket.at) * this.perSecond) / 1000 >= this.burst) {
        this.#buckets.delete(key)
      }
    }
    if (this.#buckets.size < MAX_CLIENTS) return
    const oldest = this.#buckets.keys().next()
    if (!oldest.done) this.#buckets.delete(oldest.value)
  }
}
