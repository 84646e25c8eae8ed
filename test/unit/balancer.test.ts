import { describe, expect, it } from 'vitest'
import { HashRouting } from '../../framework/discovery/balancers/hash.js'
import { createBalancer } from '../../framework/discovery/balancers/index.js'
import { LeastLoad } from '../../framework/discovery/balancers/least-load.js'
import { PowerOfTwoChoices } from '../../framework/discovery/balancers/p2c.js'
import { RandomChoice } from '../../framework/discovery/balancers/random.js'
import { RoundRobin } from '../../framework/discovery/balancers/round-robin.js'
import type { BalancerName, BalancerSpec } from '../../framework/service/balancer-spec.js'
import { endpoint, tally } from '../support/endpoints.js'

describe('RoundRobin', () => {
  it('cycles evenly over N candidates', () => {
    const candidates = ['a', 'b', 'c', 'd'].map((id) => endpoint(id))
    const balancer = new RoundRobin()
    const counts = tally(() => balancer.pick(candidates), 400)
    expect([...counts.values()]).toEqual([100, 100, 100, 100])
  })

  it('visits every candidate once in any N consecutive picks', () => {
    const candidates = ['a', 'b', 'c'].map((id) => endpoint(id))
    const balancer = new RoundRobin()
    for (let round = 0; round < 10; round++) {
      const ids = new Set([0, 1, 2].map(() => balancer.pick(candidates).id))
      expect(ids).toEqual(new Set(['a', 'b', 'c']))
    }
  })

  it('returns the only candidate', () => {
    const only = endpoint('a')
    const balancer = new RoundRobin()
    for (let i = 0; i < 5; i++) expect(balancer.pick([only])).toBe(only)
  })
})

describe('RandomChoice', () => {
  it('reaches every candidate', () => {
    const candidates = ['a', 'b', 'c', 'd', 'e'].map((id) => endpoint(id))
    const balancer = new RandomChoice()
    const seen = new Set<string>()
    for (let i = 0; i < 10_000 && seen.size < candidates.length; i++) {
      const picked = balancer.pick(candidates)
      expect(candidates).toContain(picked)
      seen.add(picked.id)
    }
    expect(seen.size).toBe(candidates.length)
  })
})

describe('LeastLoad', () => {
  // cost = (own in-flight + heartbeat in-flight + 1) × (1 + CPU), chosen softly between two.
  it('prefers fewer in-flight requests at the instance, and still tries the other', () => {
    const loaded = endpoint('loaded', { load: { inflight: 5 } }) // cost 6
    const light = endpoint('light', { load: { inflight: 1 } }) // cost 2: 75% of picks
    const counts = tally(() => new LeastLoad().pick([loaded, light]), 4_000)
    expect(counts.get('light')).toBeGreaterThan(2_700)
    expect(counts.get('light')).toBeLessThan(3_300)
    expect(counts.get('loaded')).toBeGreaterThan(0)
  })

  it("counts this caller's own in-flight requests", () => {
    const burst = endpoint('burst', { inflight: 7, load: { inflight: 0 } }) // cost 8
    const other = endpoint('other', { inflight: 0, load: { inflight: 1 } }) // cost 2: 80%
    const counts = tally(() => new LeastLoad().pick([burst, other]), 4_000)
    expect(counts.get('other')).toBeGreaterThan(2_900)
  })

  it('weighs CPU: a busy core costs up to twice as much', () => {
    const hot = endpoint('hot', { load: { inflight: 1, cpu: 1 } }) // cost 4
    const cool = endpoint('cool', { load: { inflight: 1, cpu: 0 } }) // cost 2: 67%
    const counts = tally(() => new LeastLoad().pick([hot, cool]), 4_000)
    expect(counts.get('cool')).toBeGreaterThan(2_400)
    expect(counts.get('cool')).toBeLessThan(2_950)
  })

  it('spreads calls evenly when the figures differ by a little (it used to pick one for 5 s)', () => {
    const candidates = [0.01, 0.02, 0.03].map((cpu, i) => endpoint(`e${i}`, { load: { cpu } }))
    const counts = tally(() => new LeastLoad().pick(candidates), 3_000)
    for (const id of ['e0', 'e1', 'e2']) expect(counts.get(id)).toBeGreaterThan(850)
  })
})

describe('createBalancer', () => {
  it.each([
    ['p2c', PowerOfTwoChoices],
    ['round-robin', RoundRobin],
    ['random', RandomChoice],
    ['least-load', LeastLoad],
  ] as const)('%s builds its balancer', (name, type) => {
    expect(createBalancer(name)).toBeInstanceOf(type)
  })

  it('defaults to p2c; { hash } builds key routing', () => {
    expect(createBalancer()).toBeInstanceOf(PowerOfTwoChoices)
    expect(createBalancer({ hash: () => 'k' })).toBeInstanceOf(HashRouting)
  })

  it('rejects an unknown name or shape, naming the accepted forms', () => {
    const accepted =
      /'p2c', 'round-robin', 'random', 'least-load', or \{ hash: \(\{ path, input \}\) => key \}/
    expect(() => createBalancer('fastest' as BalancerName)).toThrow(/unknown balancer "fastest"/)
    expect(() => createBalancer('fastest' as BalancerName)).toThrow(accepted)
    expect(() => createBalancer({ hash: 'key' } as unknown as BalancerSpec)).toThrow(
      /invalid balancer \{ hash: string \}.*hash:/,
    )
    expect(() => createBalancer({ hash: () => 'k', extra: 1 } as unknown as BalancerSpec)).toThrow(
      /invalid balancer \{ hash: function, extra: number \}/,
    )
    expect(() => createBalancer(42 as unknown as BalancerSpec)).toThrow(/invalid balancer 42/)
  })
})
