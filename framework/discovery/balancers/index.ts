import { assertBalancerSpec, type BalancerSpec } from '../../service/balancer-spec.js'
import type { Balancer } from './balancer.js'
import { HashRouting } from './hash.js'
import { LeastLoad } from './least-load.js'
import { PowerOfTwoChoices } from './p2c.js'
import { RandomChoice } from './random.js'
import { RoundRobin } from './round-robin.js'

export { type Balancer, BalancerKeyError } from './balancer.js'

/** The balancer a dependency's `balancer` spec names (default `p2c`); one per dependency role. */
export function createBalancer(spec: BalancerSpec = 'p2c'): Balancer {
  assertBalancerSpec(spec, 'balancer')
  if (typeof spec === 'object') return new HashRouting(spec, new PowerOfTwoChoices())
  switch (spec) {
    case 'p2c':
      return new PowerOfTwoChoices()
    case 'round-robin':
      return new RoundRobin()
    case 'random':
      return new RandomChoice()
    case 'least-load':
      return new LeastLoad()
  }
}
