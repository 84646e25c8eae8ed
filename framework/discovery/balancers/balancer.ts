import type { BalancedCall } from '../../service/balancer-spec.js'
import type { Endpoint } from '../endpoint.js'

/**
 * Picks the instance for one call among healthy candidates (never called with none). Each
 * balancer is a file beside this one; `index.ts` makes one from a dependency's `balancer` spec.
 */
export interface Balancer {
  /** `call` is the call being placed; absent when asked which instance a call would go to. */
  pick(candidates: readonly Endpoint[], call?: BalancedCall): Endpoint
  /** A successful answer from `endpoint` after `latencyMs` (sent to answered), at `now` (epoch ms). */
  observe?(endpoint: Endpoint, latencyMs: number, now: number): void
}

/** A `hash` function that threw or returned something other than a string or undefined. */
export class BalancerKeyError extends Error {
  constructor(message: string, options?: { cause: unknown }) {
    super(message, options)
    this.name = 'BalancerKeyError'
  }
}
