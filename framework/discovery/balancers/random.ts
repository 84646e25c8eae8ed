import type { Endpoint } from '../endpoint.js'
import type { Balancer } from './balancer.js'

/** Any candidate, uniformly. */
export class RandomChoice implements Balancer {
  pick(candidates: readonly Endpoint[]): Endpoint {
    return candidates[Math.floor(Math.random() * candidates.length)]!
  }
}
