import { describe, expect, it } from 'vitest'
import { instanceKey, type PhoneBookRecord, parseRecord } from '../../framework/registry/record.js'

const key = instanceKey('shop', 'cache', 'cache-1')
const good: PhoneBookRecord = {
  v: 1,
  role: 'cache',
  id: 'cache-1',
  url: 'http://127.0.0.1:4000',
  version: '1.0.0',
  contract: 'abc',
  procedures: { get: 'query', set: 'mutation' },
  load: { inflight: 0, eventLoopDelayMs: 0.2, cpu: 0.01, rss: 50_000_000 },
  startedAt: new Date(0).toISOString(),
  host: 'h',
  pid: 1,
}

describe('parseRecord', () => {
  it('accepts a valid record', () => {
    expect(parseRecord(key, JSON.stringify(good))).toEqual({ ok: true, record: good })
  })

  it.each([
    ['not JSON', '{oops', /not JSON/],
    ['an unknown version', JSON.stringify({ ...good, v: 2 }), /v: /],
    ['a missing url', JSON.stringify({ ...good, url: undefined }), /url/],
    ['a non-http url', JSON.stringify({ ...good, url: 'ftp://x' }), /url/],
    ['a wrong procedure kind', JSON.stringify({ ...good, procedures: { a: 'sub' } }), /procedures/],
    [
      'a role that is not its key',
      JSON.stringify({ ...good, role: 'api' }),
      /do not match its key/,
    ],
  ])('rejects %s with a reason naming the key', (_what, raw, reason) => {
    const parsed = parseRecord(key, raw)
    expect(parsed.ok).toBe(false)
    if (!parsed.ok) {
      expect(parsed.reason).toContain(key)
      expect(parsed.reason).toMatch(reason)
    }
  })
})
