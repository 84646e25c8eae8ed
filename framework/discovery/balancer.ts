import type { BalancerName } from '../service/define-service.js'
import type { Endpoint } from './endpoint.js'

/** Picks the instance for one call among healthy candidates (never called with none). */
export interface Balancer {
  pick(candidates: readonly Endpoint[]): Endpoint
}

function randomIndex(length: number): number {
  return Math.floor(Math.random() * length)
}

/** Power of two choices: two random candidates, fewer in-flight requests wins, ties by latency EWMA. */
export class PowerOfTwoChoices implements Balancer {
  pick(candidates: readonly Endpoint[]): Endpoint {
    if (candidates.length === 1) return candidates[0]!
    const first = randomIndex(candidates.length)
    let second = randomIndex(candidates.length - 1)
    if (second >= first) second++
    const a = candidates[first]!
    const b = candidates[second]!
    if (a.inflight !== b.inflight) return a.inflight < b.inflight ? a : b
    return a.latencyMs <= b.latencyMs ? a : b
  }
}

export class RoundRobin implements Balancer {
  #next = 0
  pick(candidates: readonly Endpoint[]): Endpoint {
    this.#next = (this.#next + 1) % 0x7fffffff
    return candidates[this.#next % candidates.length]!
  }
}

export class RandomChoice implements Balancer {
  pick(candidates: readonly Endpoint[]): Endpoint {
    return candidates[randomIndex(candidates.length)]!
  }
}

/**
 * Least load from the heartbeat's figures (in-flight at the instance, then CPU), plus this
 * caller's own in-flight requests so a burst does not pile onto one instance between heartbeats.
 */
export class LeastLoad implements Balancer {
  pick(candidates: readonly Endpoint[]): Endpoint {
    let best = candidates[0]!
    let bestScore = Number.POSITIVE_INFINITY
    const offset = randomIndex(candidates.length)
    for (let i = 0; i < candidates.length; i++) {
      const candidate = candidates[(i + offset) % candidates.length]!
      const { load } = candidate.record
      const score = load.inflight + candidate.inflight + load.cpu
      if (score < bestScore) {
        best = candidate
        bestScore = score
      }
    }
    return best
  }
}

export function createBalancer(name: BalancerName = 'p2c'): Balancer {
  switch (name) {
    case 'p2c':
      return new PowerOfTwoChoices()
    case 'round-robin':
      return new RoundRobin()
    case 'random':
      return new RandomChoice()
    case 'least-load':
      return new LeastLoad()
    default:
      throw new Error(
        `unknown balancer ${JSON.stringify(name)}: use one of p2c, round-robin, random, least-load`,
      )
  }
}
