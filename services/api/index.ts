import { z } from 'zod'
import { defineService, initService } from '../../framework/index.js'
// Type-only: api learns cache's contract without loading cache's code.
import type cache from '../cache/index.js'

const t = initService<{ cache: typeof cache }>()

const key = z.string().min(1).max(256)

export const router = t.router({
  /** Reads through the cache; `servedBy` is the cache instance that answered. */
  get: t.procedure.input(z.object({ key })).query(async ({ input, ctx }) => {
    const { value, hit, instance } = await ctx.deps.cache.get({ key: input.key })
    return { value, hit, servedBy: instance }
  }),
  /** Writes through to the cache. */
  put: t.procedure
    .input(z.object({ key, value: z.string().max(64 * 1024) }))
    .mutation(async ({ input, ctx }) => {
      const { instance } = await ctx.deps.cache.set({ key: input.key, value: input.value })
      return { ok: true as const, servedBy: instance }
    }),
})

export default defineService({
  role: 'api',
  router,
  // Each cache instance keeps its own store: a key's reads must go where its writes went.
  // Routing by key sends them to one instance while it lives; `stats` (no key) is balanced by p2c.
  deps: { cache: { balancer: { hash: ({ input }) => input?.key } } },
  // The gateway (framework gateway) lets browsers and other outside callers reach these; cache
  // exposes nothing, so it stays internal.
  expose: ['get', 'put'],
})
