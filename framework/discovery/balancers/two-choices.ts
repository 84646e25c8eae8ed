import type { Endpoint } from '../endpoint.js'

/** Two distinct candidates at random (the caller has checked there are at least two). */
export function twoAtRandom(candidates: readonly Endpoint[]): [Endpoint, Endpoint] {
  const first = Math.floor(Math.random() * candidates.length)
  let second = Math.floor(Math.random() * (candidates.length - 1))
  if (second >= first) second++
  return [candidates[first]!, candidates[second]!]
}

/**
 * One of two, each with probability inversely proportional to its cost. A clear winner (a
 * tenth of the other's cost) wins ~91% of picks; two costs apart by noise split them about
 * evenly instead of the lower one winning every time, which is what starved instances when
 * noise decided; and the costlier one is still tried now and then, so its cost is measured again.
 */
export function softerOfTwo(a: Endpoint, costA: number, b: Endpoint, costB: number): Endpoint {
  const total = costA + costB
  if (!(total > 0)) return Math.random() < 0.5 ? a : b
  return Math.random() * total < costB ? a : b
}
