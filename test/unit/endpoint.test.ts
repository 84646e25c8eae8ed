import { describe, expect, it } from 'vitest'
import { Endpoint } from '../../framework/discovery/endpoint.js'
import { instanceKey, type PhoneBookRecord } from '../../framework/registry/record.js'

function endpoint(): Endpoint {
  const record: PhoneBookRecord = {
    v: 1,
    role: 'cache',
    id: 'cache-1',
    url: 'http://127.0.0.1:4000',
    version: '1.0.0',
    contract: 'c',
    procedures: { get: 'query' },
    load: { inflight: 0, eventLoopDelayMs: 0, cpu: 0, rss: 1 },
    startedAt: new Date(0).toISOString(),
    host: 'h',
    pid: 1,
  }
  return new Endpoint(instanceKey('shop', 'cache', 'cache-1'), record)
}

const NOW = 1_700_000_000_000

describe('Endpoint', () => {
  it('exposes id and url from its record', () => {
    const e = endpoint()
    expect(e.id).toBe('cache-1')
    expect(e.url).toBe('http://127.0.0.1:4000')
    expect(e.key).toBe('/shop/services/cache/cache-1')
    expect({ inflight: e.inflight, calls: e.calls }).toEqual({
      inflight: 0,
      calls: 0,
    })
  })

  it('backs off 1s, 2s, 4s … capped at 30s on repeated ejections', () => {
    const e = endpoint()
    const backoffs: number[] = []
    for (let i = 0; i < 8; i++) {
      const backoff = e.eject(NOW)
      expect(e.ejectedUntil).toBe(NOW + backoff)
      backoffs.push(backoff)
    }
    expect(backoffs).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000])
    expect(e.ejections).toBe(8)
  })

  it('stays capped after very many ejections', () => {
    const e = endpoint()
    let last = 0
    for (let i = 0; i < 2_000; i++) last = e.eject(NOW)
    expect(last).toBe(30_000)
    expect(e.ejectedUntil).toBe(NOW + 30_000)
  })

  it('isEjected is true strictly before ejectedUntil', () => {
    const e = endpoint()
    expect(e.isEjected(NOW)).toBe(false)
    e.eject(NOW)
    expect(e.isEjected(NOW)).toBe(true)
    expect(e.isEjected(NOW + 999)).toBe(true)
    expect(e.isEjected(NOW + 1_000)).toBe(false)
    expect(e.isEjected(NOW + 1_001)).toBe(false)
  })

  it('a success ends the ejection streak, so the next backoff starts at 1s again', () => {
    const e = endpoint()
    e.eject(NOW)
    e.eject(NOW)
    expect(e.eject(NOW)).toBe(4_000)
    e.succeeded()
    expect(e.ejections).toBe(0)
    expect(e.eject(NOW)).toBe(1_000)
  })
})
