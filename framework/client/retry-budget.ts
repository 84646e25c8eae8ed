/**
 * Caps retries at a share of calls (`ratio`, ≈20%) plus a small floor per second, so a failing
 * dependency is not hit with a retry storm (the idea of Finagle's and gRPC's retry budgets).
 */
export class RetryBudget {
  #tokens: number
  #refilledAt = Date.now()
  /** Told each time a retry is refused for want of budget (the process's metrics). */
  onExhausted: (() => void) | undefined

  constructor(
    private readonly ratio = 0.2,
    private readonly minPerSecond = 10,
    private readonly capacity = 100,
  ) {
    this.#tokens = minPerSecond
  }

  /** Every call earns `ratio` of a retry. */
  deposit(): void {
    this.#tokens = Math.min(this.capacity, this.#tokens + this.ratio)
  }

  /** True if a retry would be allowed now (takes nothing). */
  canWithdraw(): boolean {
    this.#refill()
    return this.#tokens >= 1
  }

  /** Takes one retry if the budget allows. */
  withdraw(): boolean {
    this.#refill()
    if (this.#tokens < 1) {
      this.onExhausted?.()
      return false
    }
    this.#tokens--
    return true
  }

  #refill(): void {
    const now = Date.now()
    const elapsed = (now - this.#refilledAt) / 1000
    if (elapsed > 0) {
      this.#tokens = Math.min(this.capacity, this.#tokens + elapsed * this.minPerSecond)
      this.#refilledAt = now
    }
  }
}
