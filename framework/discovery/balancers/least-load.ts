import type { Endpoint } from '../endpoint.js'
import type { Balancer } from './balancer.js'
import { softerOfTwo, twoAtRandom } from './two-choices.js'

/**
 * Least load from the heartbeat's figures (in-flight at the instance, CPU in cores), plus this
 * caller's own in-flight calls so a burst does not pile onto one instance between heartbeats:
 * cost = (own in-flight + heartbeat in-flight + 1) × (1 + CPU), compared between two random
 * candidates and chosen softly. (Taking the lowest of all used to send every call to one
 * instance for a whole heartbeat period, 5 s, whenever the figures differed by a hundredth.)
 */
export class LeastLoad implements Balancer {
  pick(candidates: readonly Endpoint[]): Endpoint {
    if (candidates.length === 1) return candidates[0]!
    const [a, b] = twoAtRandom(candidates)
    return softerOfTwo(a, cost(a), b, cost(b))
  }
}

function cost(endpoint: Endpoint): number {
  const { load } = endpoint.record
  return (endpoint.inflight + load.inflight + 1) * (1 + load.cpu)
}
