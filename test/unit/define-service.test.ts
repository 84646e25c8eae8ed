import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineService, initService } from '../../framework/index.js'
import { contractHash, procedureManifest } from '../../framework/service/manifest.js'

const t = initService()
const router = t.router({
  ping: t.procedure.query(() => 'pong'),
  admin: t.router({ flush: t.procedure.mutation(() => true) }),
  echo: t.procedure.input(z.object({ text: z.string() })).query(({ input }) => input.text),
})

describe('defineService', () => {
  it('returns a frozen definition with defaults', () => {
    const service = defineService({ role: 'echo', router })
    expect(service).toMatchObject({
      kind: 'framework.service',
      role: 'echo',
      deps: {},
      replicas: 1,
    })
    expect(Object.isFrozen(service)).toBe(true)
  })

  for (const role of [
    '',
    'Cache',
    '1cache',
    'cache_1',
    'ca che',
    `a${'b'.repeat(63)}`,
    'cache/x',
  ]) {
    it(`rejects role ${JSON.stringify(role)} naming the role and the rule`, () => {
      expect(() => defineService({ role, router })).toThrowError(
        new RegExp(
          `invalid role ${JSON.stringify(role).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}.*\\^\\[a-z\\]`,
        ),
      )
    })
  }

  it('accepts the longest valid role', () => {
    expect(defineService({ role: `a${'b'.repeat(62)}`, router }).role).toHaveLength(63)
  })

  it('rejects bad replicas', () => {
    expect(() => defineService({ role: 'echo', router, replicas: 0 })).toThrow(/replicas/)
  })
})

describe('procedure manifest', () => {
  it('lists every query and mutation by dotted path, sorted, and hashes it stably', () => {
    const manifest = procedureManifest(router)
    expect(manifest).toEqual({ 'admin.flush': 'mutation', echo: 'query', ping: 'query' })
    expect(Object.keys(manifest)).toEqual(['admin.flush', 'echo', 'ping'])
    // docs/registry-protocol.md: SHA-256 of the procedures as JSON with keys sorted, 16 hex digits.
    const sorted = JSON.stringify({ 'admin.flush': 'mutation', echo: 'query', ping: 'query' })
    expect(contractHash(manifest)).toBe(
      createHash('sha256').update(sorted).digest('hex').slice(0, 16),
    )
    expect(contractHash(manifest)).not.toBe(contractHash({ ...manifest, ping: 'mutation' }))
  })

  // Known bug (framework/service/manifest.ts:20-21): contractHash hashes the manifest in the key
  // order it is given, where docs/registry-protocol.md says keys sorted. The runtime only passes
  // procedureManifest's sorted output, so records are right today; any other caller (a record's
  // procedures as a peer wrote them) gets another hash for the same procedures. Fix: sort the keys
  // in contractHash; then this test passes and `.fails` must go.
  it.fails('hashes the same procedures in another key order the same', () => {
    const manifest = procedureManifest(router)
    const reversed = Object.fromEntries(Object.entries(manifest).reverse())
    expect(Object.keys(reversed)).not.toEqual(Object.keys(manifest))
    expect(contractHash(reversed)).toBe(contractHash(manifest))
  })
})
