import { describe, expect, it } from 'vitest'
import {
  createBalancer,
  LeastLoad,
  PowerOfTwoChoices,
  RandomChoice,
  RoundRobin,
} from '../../framework/discovery/balancer.js'
import { Endpoint } from '../../framework/discovery/endpoint.js'
import { instanceKey, type Load, type PhoneBookRecord } from '../../framework/registry/record.js'
import type { BalancerName } from '../../framework/service/define-service.js'

const PICKS = 500

function endpoint(
  id: string,
  options: { inflight?: number; latencyMs?: number; load?: Partial<Load> } = {},
): Endpoint {
  const record: PhoneBookRecord = {
    v: 1,
    role: 'cache',
    id,
    url: `http://127.0.0.1:1/${id}`,
    version: '1.0.0',
    contract: 'c',
    procedures: { get: 'query' },
    load: { inflight: 0, eventLoopDelayMs: 0, cpu: 0, rss: 1, ...options.load },
    startedAt: new Date(0).toISOString(),
    host: 'h',
    pid: 1,
  }
  const result = new Endpoint(instanceKey('shop', 'cache', id), record)
  result.inflight = options.inflight ?? 0
  result.latencyMs = options.latencyMs ?? 0
  return result
}

/** How many times each id is picked over `n` picks. */
function tally(pick: () => Endpoint, n = PICKS): Map<string, number> {
  const counts = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    const id = pick().id
    counts.set(id, (counts.get(id) ?? 0) + 1)
  }
  return counts
}

describe('PowerOfTwoChoices', () => {
  it('returns the only candidate', () => {
    const only = endpoint('a', { inflight: 9, latencyMs: 100 })
    const balancer = new PowerOfTwoChoices()
    for (let i = 0; i < 20; i++) expect(balancer.pick([only])).toBe(only)
  })

  it('never picks the one with more in-flight requests of two', () => {
    const idle = endpoint('idle', { inflight: 0, latencyMs: 500 })
    const busy = endpoint('busy', { inflight: 3, latencyMs: 1 })
    const balancer = new PowerOfTwoChoices()
    expect(tally(() => balancer.pick([idle, busy]))).toEqual(new Map([['idle', PICKS]]))
    expect(tally(() => balancer.pick([busy, idle]))).toEqual(new Map([['idle', PICKS]]))
  })

  it('never picks the busiest of three when the other two are equal', () => {
    const a = endpoint('a', { inflight: 1 })
    const b = endpoint('b', { inflight: 1 })
    const busy = endpoint('busy', { inflight: 2 })
    const balancer = new PowerOfTwoChoices()
    const counts = tally(() => balancer.pick([a, busy, b]))
    expect(counts.get('busy')).toBeUndefined()
    expect(counts.get('a')).toBeGreaterThan(0)
    expect(counts.get('b')).toBeGreaterThan(0)
  })

  it('breaks in-flight ties by the lower latency EWMA', () => {
    const fast = endpoint('fast', { inflight: 2, latencyMs: 5 })
    const slow = endpoint('slow', { inflight: 2, latencyMs: 50 })
    const balancer = new PowerOfTwoChoices()
    expect(tally(() => balancer.pick([slow, fast]))).toEqual(new Map([['fast', PICKS]]))
  })
})

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
  it('prefers fewer in-flight requests at the instance', () => {
    const loaded = endpoint('loaded', { load: { inflight: 5 } })
    const light = endpoint('light', { load: { inflight: 1 } })
    const balancer = new LeastLoad()
    expect(tally(() => balancer.pick([loaded, light]))).toEqual(new Map([['light', PICKS]]))
  })

  it("counts this caller's own in-flight requests", () => {
    const burst = endpoint('burst', { inflight: 4, load: { inflight: 0 } })
    const other = endpoint('other', { inflight: 0, load: { inflight: 2 } })
    const balancer = new LeastLoad()
    expect(tally(() => balancer.pick([burst, other]))).toEqual(new Map([['other', PICKS]]))
  })

  it('breaks equal in-flight counts by CPU', () => {
    const hot = endpoint('hot', { load: { inflight: 1, cpu: 0.9 } })
    const cool = endpoint('cool', { load: { inflight: 1, cpu: 0.2 } })
    const balancer = new LeastLoad()
    expect(tally(() => balancer.pick([hot, cool]))).toEqual(new Map([['cool', PICKS]]))
  })

  it('scores in-flight (instance + local) plus CPU', () => {
    // scores: a = 2 + 1 + 0.5 = 3.5, b = 1 + 1 + 1.2 = 3.2, c = 3 + 0 + 0.1 = 3.1
    const a = endpoint('a', { inflight: 1, load: { inflight: 2, cpu: 0.5 } })
    const b = endpoint('b', { inflight: 1, load: { inflight: 1, cpu: 1.2 } })
    const c = endpoint('c', { inflight: 0, load: { inflight: 3, cpu: 0.1 } })
    const balancer = new LeastLoad()
    expect(tally(() => balancer.pick([a, b, c]))).toEqual(new Map([['c', PICKS]]))
  })

  it('spreads ties over the tied candidates', () => {
    const candidates = ['a', 'b', 'c'].map((id) => endpoint(id))
    const balancer = new LeastLoad()
    const counts = tally(() => balancer.pick(candidates), 3_000)
    for (const id of ['a', 'b', 'c']) expect(counts.get(id)).toBeGreaterThan(0)
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

  it('defaults to p2c', () => {
    expect(createBalancer()).toBeInstanceOf(PowerOfTwoChoices)
  })

  it('rejects an unknown name, listing the valid ones', () => {
    expect(() => createBalancer('fastest' as BalancerName)).toThrow(
      /unknown balancer "fastest".*p2c, round-robin, random, least-load/,
    )
  })
})
