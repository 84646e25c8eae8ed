import { describe, expect, it } from 'vitest'
import { BalancerKeyError } from '../../framework/discovery/balancers/balancer.js'
import { HashRouting } from '../../framework/discovery/balancers/hash.js'
import { PowerOfTwoChoices } from '../../framework/discovery/balancers/p2c.js'
import type { Endpoint } from '../../framework/discovery/endpoint.js'
import type { HashBalancer } from '../../framework/service/balancer-spec.js'
import { endpoint, tally } from '../support/endpoints.js'

const byKey: HashBalancer = {
  hash: ({ input }) => (input as { key?: string } | undefined)?.key,
}

function routing(spec: HashBalancer = byKey): HashRouting {
  return new HashRouting(spec, new PowerOfTwoChoices())
}

/** Where each of `keys` goes among `candidates`. */
function placement(balancer: HashRouting, candidates: Endpoint[], keys: string[]) {
  return new Map(
    keys.map((key) => [key, balancer.pick(candidates, { path: 'get', input: { key } }).id]),
  )
}

const KEYS = Array.from({ length: 3_000 }, (_, i) => `key-${i}`)

describe('HashRouting (rendezvous hashing on a key from each call)', () => {
  it('sends every call with the same key to the same instance, whatever the order of candidates', () => {
    const balancer = routing()
    const candidates = ['a', 'b', 'c'].map((id) => endpoint(id))
    const first = placement(balancer, candidates, KEYS)
    expect(placement(balancer, [...candidates].reverse(), KEYS)).toEqual(first)
    // A second caller (another balancer) agrees: the order is a function of key and instance ids.
    expect(placement(routing(), candidates, KEYS)).toEqual(first)
  })

  it('spreads keys about evenly', () => {
    const candidates = ['a', 'b', 'c'].map((id) => endpoint(id))
    const counts = new Map<string, number>()
    for (const id of placement(routing(), candidates, KEYS).values()) {
      counts.set(id, (counts.get(id) ?? 0) + 1)
    }
    for (const id of ['a', 'b', 'c']) {
      expect(counts.get(id)).toBeGreaterThan(850)
      expect(counts.get(id)).toBeLessThan(1_150)
    }
  })

  it('moves only the keys of an instance that leaves, and only to the others', () => {
    const balancer = routing()
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((id) => endpoint(id)) as [
      Endpoint,
      Endpoint,
      Endpoint,
      Endpoint,
    ]
    const before = placement(balancer, [a, b, c, d], KEYS)
    const after = placement(balancer, [a, b, d], KEYS)
    let moved = 0
    for (const key of KEYS) {
      if (before.get(key) === 'c') moved++
      else expect(after.get(key)).toBe(before.get(key))
    }
    expect(moved).toBeGreaterThan(600)
    expect(moved).toBeLessThan(900)
  })

  it('a joining instance takes ~1/N of the keys, all from the others', () => {
    const balancer = routing()
    const old = ['a', 'b', 'c'].map((id) => endpoint(id))
    const before = placement(balancer, old, KEYS)
    const after = placement(balancer, [...old, endpoint('new')], KEYS)
    let taken = 0
    for (const key of KEYS) {
      if (after.get(key) === 'new') taken++
      else expect(after.get(key)).toBe(before.get(key))
    }
    expect(taken).toBeGreaterThan(600)
    expect(taken).toBeLessThan(900)
  })

  it("a retry (the first choice left out, as the client does) goes to the key's next instance", () => {
    const balancer = routing()
    const candidates = ['a', 'b', 'c', 'd', 'e'].map((id) => endpoint(id))
    for (const key of KEYS.slice(0, 200)) {
      const call = { path: 'get', input: { key } }
      const first = balancer.pick(candidates, call)
      const rest = candidates.filter((e) => e !== first)
      const second = balancer.pick(rest, call)
      // The next in the key's order is where the key goes once the first is gone for good.
      expect(placement(balancer, rest, [key]).get(key)).toBe(second.id)
      expect(second).not.toBe(first)
    }
  })

  it('calls without a key (undefined) and "which instance" questions are balanced by p2c', () => {
    const balancer = routing()
    const candidates = ['a', 'b', 'c'].map((id) => endpoint(id))
    const noKey = tally(() => balancer.pick(candidates, { path: 'stats', input: undefined }), 3_000)
    const asked = tally(() => balancer.pick(candidates), 3_000)
    for (const counts of [noKey, asked]) {
      for (const id of ['a', 'b', 'c']) expect(counts.get(id)).toBeGreaterThan(800)
    }
  })

  it('a hash function that throws, or returns a non-string, fails that call with a BalancerKeyError', () => {
    const candidates = ['a', 'b'].map((id) => endpoint(id))
    const throwing = routing({
      hash: () => {
        throw new Error('no key here')
      },
    })
    expect(() => throwing.pick(candidates, { path: 'get', input: {} })).toThrow(BalancerKeyError)
    expect(() => throwing.pick(candidates, { path: 'get', input: {} })).toThrow(
      /the hash function threw: no key here/,
    )
    const numeric = routing({ hash: () => 42 as unknown as string })
    expect(() => numeric.pick(candidates, { path: 'get', input: {} })).toThrow(
      /the hash function returned a number \(42\) for 'get'/,
    )
    const nil = routing({ hash: () => null as unknown as string })
    expect(() => nil.pick(candidates, { path: 'get', input: {} })).toThrow(/returned null/)
  })
})
