import type { Endpoint } from '../endpoint.js'
import type { Balancer } from './balancer.js'
import { PeakEwma, TypicalLatency } from './peak-ewma.js'
import { softerOfTwo, twoAtRandom } from './two-choices.js'

/**
 * Latency raises an instance's cost only beyond this multiple of the role's typical latency:
 * below it, healthy instances differ by noise (a GC pause, the machine's other work), and
 * letting noise decide made the fastest-looking instance take most sequential calls.
 */
const LATENCY_TOLERANCE = 3
/**
 * Share of picks that go to a candidate at random, whatever the costs: a slow instance keeps
 * being measured at this floor rate (with a fixed number of callers, in-flight costs alone leave
 * an instance 40x slower ~1% of the calls), so its return to speed is seen within a second.
 */
const PROBE_SHARE = 0.03

/**
 * Power of two choices on a peak-EWMA cost (the default balancer): two random candidates,
 * cost = (this caller's in-flight calls + 1) × latency factor, where the latency factor is the
 * instance's peak-EWMA estimate over LATENCY_TOLERANCE × the role's typical latency (at least 1).
 * The lower cost is chosen softly (see `softerOfTwo`), and a few picks (PROBE_SHARE) ignore the
 * costs, so a slow instance keeps a small share that measures it, and is back to its full share
 * soon after it is fast again.
 */
export class PowerOfTwoChoices implements Balancer {
  readonly #estimates = new WeakMap<Endpoint, PeakEwma>()
  readonly #typical = new TypicalLatency()

  pick(candidates: readonly Endpoint[]): Endpoint {
    if (candidates.length === 1) return candidates[0]!
    if (Math.random() < PROBE_SHARE)
      return candidates[Math.floor(Math.random() * candidates.length)]!
    const [a, b] = twoAtRandom(candidates)
    const now = Date.now()
    return softerOfTwo(a, this.cost(a, now), b, this.cost(b, now))
  }

  observe(endpoint: Endpoint, latencyMs: number, now: number): void {
    const estimate = this.#estimate(endpoint)
    if (estimate.observe(latencyMs, now, this.#typical.value)) {
      // The reference is what estimates look like (peaks and all), not raw answers: on a busy
      // machine every estimate runs high, and only one out of line with the others should cost.
      this.#typical.observe(estimate.at(now, this.#typical.value))
    }
  }

  /** The cost p2c compares (exposed for tests and `framework watch`). */
  cost(endpoint: Endpoint, now: number): number {
    const typical = this.#typical.value
    const latency = this.#estimates.get(endpoint)?.at(now, typical) ?? typical
    const factor = typical > 0 ? Math.max(1, latency / (LATENCY_TOLERANCE * typical)) : 1
    return (endpoint.inflight + 1) * factor
  }

  #estimate(endpoint: Endpoint): PeakEwma {
    let estimate = this.#estimates.get(endpoint)
    if (!estimate) {
      estimate = new PeakEwma()
      this.#estimates.set(endpoint, estimate)
    }
    return estimate
  }
}
