import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { type AnyServiceDefinition, defineService, initService } from '../../framework/index.js'
import { contractHash, procedureManifest } from '../../framework/service/manifest.js'
import { ServiceDefinitionError } from '../../framework/service/service-definition-error.js'

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

  it('rejects an unknown balancer name or shape with FRAMEWORK_ERR_BAD_BALANCER, naming the accepted forms', () => {
    const typed = initService<{ other: AnyServiceDefinition }>()
    for (const balancer of ['fastest', { hash: 'key' }, { sticky: true }, 7]) {
      const define = () =>
        defineService({
          role: 'keyed',
          router: typed.router({}),
          deps: { other: { balancer: balancer as never } },
        })
      expect(define).toThrow(ServiceDefinitionError)
      expect(define).toThrow(
        /^service 'keyed', deps\.other\.balancer: .*or \{ hash: \(\{ path, input \}\) => key \}/,
      )
      try {
        define()
      } catch (err) {
        expect((err as ServiceDefinitionError).code).toBe('FRAMEWORK_ERR_BAD_BALANCER')
      }
    }
  })

  it('resolves expose: nothing by default, every procedure for true, the listed paths sorted', () => {
    expect(defineService({ role: 'echo', router }).expose).toEqual([])
    expect(defineService({ role: 'echo', router, expose: true }).expose).toEqual([
      'admin.flush',
      'echo',
      'ping',
    ])
    expect(defineService({ role: 'echo', router, expose: ['ping', 'admin.flush'] }).expose).toEqual(
      ['admin.flush', 'ping'],
    )
  })

  it('rejects an expose naming no procedure, or of a bad shape, with FRAMEWORK_ERR_BAD_EXPOSE', () => {
    for (const expose of [['pong'], ['admin'], 'ping', [3], { ping: true }]) {
      let thrown: unknown
      try {
        defineService({ role: 'echo', router, expose: expose as never })
      } catch (err) {
        thrown = err
      }
      expect(thrown, JSON.stringify(expose)).toBeInstanceOf(ServiceDefinitionError)
      expect((thrown as ServiceDefinitionError).code).toBe('FRAMEWORK_ERR_BAD_EXPOSE')
      expect((thrown as Error).message).toMatch(
        /^service 'echo': .*use expose: true \(every procedure\) or a list of its procedure paths \(admin.flush, echo, ping\)$/,
      )
    }
  })

  it('rejects a deps maxInflight that is not a whole number >= 1, naming the field; keeps a good one', () => {
    const typed = initService<{ cache: AnyServiceDefinition }>()
    const define = (maxInflight: unknown) => () =>
      defineService({
        role: 'capped',
        router: typed.router({}),
        deps: { cache: { maxInflight: maxInflight as number } },
      })
    for (const bad of [-1, 0, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '100', null]) {
      expect(define(bad)).toThrow(ServiceDefinitionError)
      expect(define(bad)).toThrow(
        /^service 'capped', deps\.cache\.maxInflight: invalid .*; use a whole number >= 1 .*or leave it out for no cap$/,
      )
    }
    expect(define(100)().deps.cache?.maxInflight).toBe(100)
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

  // docs/registry-protocol.md: keys sorted, whatever order the manifest is given in.
  it('hashes the same procedures in another key order the same', () => {
    const manifest = procedureManifest(router)
    const reversed = Object.fromEntries(Object.entries(manifest).reverse())
    expect(Object.keys(reversed)).not.toEqual(Object.keys(manifest))
    expect(contractHash(reversed)).toBe(contractHash(manifest))
  })
})
