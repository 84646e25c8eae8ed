import type { BalancedCall, HashBalancer } from '../../service/balancer-spec.js'
import type { Endpoint } from '../endpoint.js'
import { type Balancer, BalancerKeyError } from './balancer.js'
import { hashString, rendezvous } from './rendezvous.js'

/**
 * Routing by key: `hash({ path, input })` names a key, and the call goes to the candidate that
 * rendezvous hashing gives that key. Candidates are the live, not ejected instances the call has
 * not tried yet, so a retry goes to the next instance in the key's order. Calls without a key
 * (`undefined`), and "which instance would a call go to" questions, go to `fallback` (p2c).
 */
export class HashRouting implements Balancer {
  readonly #instanceHashes = new WeakMap<Endpoint, number>()

  constructor(
    private readonly spec: HashBalancer,
    private readonly fallback: Balancer,
  ) {}

  pick(candidates: readonly Endpoint[], call?: BalancedCall): Endpoint {
    const key = call === undefined ? undefined : this.#key(call)
    if (key === undefined) return this.fallback.pick(candidates, call)
    return rendezvous(hashString(key), candidates, this.#instanceHash)!
  }

  observe(endpoint: Endpoint, latencyMs: number, now: number): void {
    this.fallback.observe?.(endpoint, latencyMs, now)
  }

  #key(call: BalancedCall): string | undefined {
    let key: unknown
    try {
      key = this.spec.hash(call)
    } catch (err) {
      throw new BalancerKeyError(`the hash function threw: ${(err as Error)?.message ?? err}`, {
        cause: err,
      })
    }
    if (key === undefined || typeof key === 'string') return key
    throw new BalancerKeyError(
      `the hash function returned ${key === null ? 'null' : `a ${typeof key}`} (${String(key).slice(0, 40)}) for '${call.path}'`,
    )
  }

  readonly #instanceHash = (endpoint: Endpoint): number => {
    let hash = this.#instanceHashes.get(endpoint)
    if (hash === undefined) {
      hash = hashString(endpoint.id)
      this.#instanceHashes.set(endpoint, hash)
    }
    return hash
  }
}
