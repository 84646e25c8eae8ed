import type { Endpoint } from '../endpoint.js'
import type { Balancer } from './balancer.js'

/** Each candidate in turn. */
export class RoundRobin implements Balancer {
  #next = 0
  pick(candidates: readonly Endpoint[]): Endpoint {
    this.#next = (this.#next + 1) % 0x7fffffff
    return candidates[this.#next % candidates.length]!
  }
}
