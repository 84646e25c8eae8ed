/**
 * How fast an estimate that is not observed drifts back to the role's typical latency (ms, the
 * time constant of an exponential): an instance written off as slow is soon worth trying again.
 */
export const DECAY_MS = 2_000
/** Weight of a sample below the estimate; a sample above it replaces it (the peak)... */
const DOWN_WEIGHT = 0.2
/** ...up to this multiple of the estimate per sample. */
const PEAK_STEP = 2
/** Weight of each sample in the role's typical latency. */
const TYPICAL_WEIGHT = 0.05
/** Shorter answers count as this long in the typical latency (a timer's resolution). */
const MIN_SAMPLE_MS = 0.001

/**
 * One instance's latency estimate, a peak-EWMA as in Finagle and tower: a slower answer than the
 * estimate becomes the estimate (up to PEAK_STEP times it per answer, so one outlier such as a GC
 * pause does not write a healthy instance off for seconds, while a really slow one is found
 * within a few answers), a faster one pulls it down a fifth of the way, and while nothing is
 * observed it decays toward a neutral value (the role's typical latency) with time constant
 * DECAY_MS. An instance with no sample yet is neutral: it neither wins nor loses every comparison.
 * (tower decays toward zero and weighs faster samples by elapsed time only: in a simulation over
 * latencies measured here, that let one slow answer decide which instance served most calls.)
 */
export class PeakEwma {
  #estimate: number | undefined
  /** When #estimate was set (epoch ms). */
  #at = 0
  #answered = false

  /** The estimate at `now`, ms. */
  at(now: number, neutral: number): number {
    if (this.#estimate === undefined) return neutral
    return neutral + (this.#estimate - neutral) * Math.exp(-(now - this.#at) / DECAY_MS)
  }

  /**
   * Takes one answer's latency into the estimate; false for an instance's first answer, which
   * is left out (here and in the role's typical latency): it carries one-time costs of the
   * instance (a cold JIT, lazy initialisation), not its speed. A slow instance is found by the
   * answers after it.
   */
  observe(latencyMs: number, now: number, neutral: number): boolean {
    if (!this.#answered) {
      this.#answered = true
      return false
    }
    const current = this.at(now, neutral)
    this.#estimate =
      latencyMs > current
        ? Math.min(latencyMs, current > 0 ? current * PEAK_STEP : latencyMs)
        : current + (latencyMs - current) * DOWN_WEIGHT
    this.#at = now
    return true
  }
}

/**
 * The typical latency of a role's calls, whichever instance answered: an EWMA of the logarithm
 * (a moving geometric mean), so that one slow instance among healthy ones, or an outlier, does
 * not pass for typical the way it would in an arithmetic mean.
 */
export class TypicalLatency {
  /** ms; 0 until the first sample. */
  value = 0
  #log: number | undefined

  observe(latencyMs: number): void {
    const log = Math.log(Math.max(latencyMs, MIN_SAMPLE_MS))
    this.#log = this.#log === undefined ? log : this.#log + (log - this.#log) * TYPICAL_WEIGHT
    this.value = Math.exp(this.#log)
  }
}
