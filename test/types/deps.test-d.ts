import { describe, expectTypeOf, it } from 'vitest'
import { z } from 'zod'
import { defineService, initService } from '../../framework/index.js'
import type cache from '../../services/cache/index.js'

// A dependency with a nested router, to prove nested paths are typed.
const s = initService()
const store = defineService({
  role: 'store',
  router: s.router({
    ping: s.procedure.query(() => 'pong' as const),
    admin: s.router({
      flush: s.procedure.mutation(() => ({ flushed: 3 })),
      resize: s.procedure.input(z.object({ size: z.number() })).mutation(({ input }) => input.size),
    }),
    when: s.procedure.query(() => new Date()),
  }),
})

const t = initService<{ cache: typeof cache; store: typeof store }>()

describe('ctx.deps', () => {
  it('types each dependency procedure from a type-only import', () => {
    t.procedure.query(async ({ ctx }) => {
      expectTypeOf(ctx.deps.cache.get).parameter(0).toEqualTypeOf<{ key: string }>()
      expectTypeOf(ctx.deps.cache.get({ key: 'k' })).resolves.toEqualTypeOf<{
        value: string | null
        hit: boolean
        instance: string
      }>()
      expectTypeOf(ctx.deps.cache.set).parameter(0).toEqualTypeOf<{
        key: string
        value: string
        ttlSeconds?: number | undefined
      }>()
      expectTypeOf(ctx.deps.cache.stats()).resolves.toHaveProperty('hits').toEqualTypeOf<number>()
      expectTypeOf(ctx.deps.store.admin.flush()).resolves.toEqualTypeOf<{ flushed: number }>()
      expectTypeOf(ctx.deps.store.ping()).resolves.toEqualTypeOf<'pong'>()
      // JSON on the wire: a Date arrives as a string.
      expectTypeOf(ctx.deps.store.when()).resolves.toEqualTypeOf<string>()

      // @ts-expect-error: no such procedure
      await ctx.deps.cache.gett({ key: 'k' })
      // @ts-expect-error: wrong input type
      await ctx.deps.cache.get({ key: 1 })
      // @ts-expect-error: missing input
      await ctx.deps.cache.get()
      // @ts-expect-error: undeclared dependency
      await ctx.deps.orders.list()
      // @ts-expect-error: nested input type checked too
      await ctx.deps.store.admin.resize({ size: 'big' })
      await ctx.deps.cache.get({ key: 'k' }, { timeoutMs: 500 })
      return null
    })
  })

  it('requires defineService to declare exactly the typed deps', () => {
    const router = t.router({ ping: t.procedure.query(() => 1) })
    defineService({ role: 'ok', router, deps: { cache: true, store: { balancer: 'round-robin' } } })
    // @ts-expect-error: deps missing although the builder names cache and store
    defineService({ role: 'missing', router })
    // @ts-expect-error: store is not declared
    defineService({ role: 'partial', router, deps: { cache: true } })
    // @ts-expect-error: unknown balancer
    defineService({ role: 'bad', router, deps: { cache: { balancer: 'fastest' }, store: true } })
  })

  it('types a hash balancer by the dependency contract: a union of { path, input } by procedure', () => {
    const router = t.router({ ping: t.procedure.query(() => 1) })
    defineService({
      role: 'keyed',
      router,
      deps: {
        // stats takes no input, so input may be undefined: `input?.key`, undefined = p2c.
        cache: { balancer: { hash: ({ input }) => input?.key } },
        store: {
          balancer: {
            hash: (call) => {
              expectTypeOf(call.path).toEqualTypeOf<
                'ping' | 'admin.flush' | 'admin.resize' | 'when'
              >()
              // The union narrows by path.
              if (call.path === 'admin.resize') return String(call.input.size)
              return undefined
            },
          },
        },
      },
    })
    defineService({
      role: 'keyed-bad',
      router,
      deps: {
        // @ts-expect-error: stats has no input, so `input` may be undefined
        cache: { balancer: { hash: ({ input }) => input.key } },
        store: true,
      },
    })
    defineService({
      role: 'keyed-bad-field',
      router,
      deps: {
        // @ts-expect-error: no procedure of cache takes a `name`
        cache: { balancer: { hash: ({ input }) => input?.name } },
        store: true,
      },
    })
    defineService({
      role: 'keyed-bad-return',
      router,
      deps: {
        // @ts-expect-error: a key is a string
        cache: { balancer: { hash: () => 42 } },
        store: true,
      },
    })
  })
})
