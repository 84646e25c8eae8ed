import { createTRPCClient, httpBatchLink } from '@trpc/client'
import { describe, expectTypeOf, it } from 'vitest'
import { z } from 'zod'
import {
  defineGateway,
  defineService,
  type GatewayRouter,
  initService,
} from '../../framework/index.js'
import type api from '../../services/api/index.js'
import type cache from '../../services/cache/index.js'

const s = initService()
const store = defineService({
  role: 'store',
  router: s.router({
    ping: s.procedure.query(() => 'pong' as const),
    admin: s.router({
      flush: s.procedure.mutation(() => ({ flushed: 3 })),
      resize: s.procedure.input(z.object({ size: z.number() })).mutation(({ input }) => input.size),
    }),
  }),
  expose: ['admin.flush'],
})

type AppRouter = GatewayRouter<{ api: typeof api; cache: typeof cache; store: typeof store }>
const client = createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: '/trpc' })] })

describe('GatewayRouter', () => {
  it('types the exposed procedures end to end from type-only imports', async () => {
    expectTypeOf(client.api.get.query).parameter(0).toEqualTypeOf<{ key: string }>()
    expectTypeOf(client.api.get.query({ key: 'a' })).resolves.toEqualTypeOf<{
      value: string | null
      hit: boolean
      servedBy: string
    }>()
    expectTypeOf(client.api.put.mutate).parameter(0).toEqualTypeOf<{ key: string; value: string }>()
    expectTypeOf(client.store.admin.flush.mutate()).resolves.toEqualTypeOf<{ flushed: number }>()
  })

  it('leaves out what is not exposed', async () => {
    // @ts-expect-error: cache exposes nothing
    await client.cache.get.query({ key: 'a' })
    // @ts-expect-error: store.ping is not exposed
    await client.store.ping.query()
    // @ts-expect-error: store.admin.resize is not exposed
    await client.store.admin.resize.mutate({ size: 1 })
    // @ts-expect-error: no such role
    await client.orders.list.query()
    // @ts-expect-error: wrong input type
    await client.api.get.query({ key: 1 })
    // @ts-expect-error: a query is not a mutation
    await client.api.get.mutate({ key: 'a' })
  })

  it('names a role by its own role only', () => {
    const renamed = createTRPCClient<GatewayRouter<{ apii: typeof api }>>({
      links: [httpBatchLink({ url: '/trpc' })],
    })
    // @ts-expect-error: the key must be the definition's role
    void renamed.apii
  })

  it('checks expose against the router', () => {
    const router = s.router({ ping: s.procedure.query(() => 1) })
    defineService({ role: 'ok', router, expose: ['ping'] })
    defineService({ role: 'ok', router, expose: true })
    // @ts-expect-error: not a procedure of the router
    defineService({ role: 'bad', router, expose: ['pong'] })
  })

  it('types gateway.ts: the hash key function sees the role’s inputs', () => {
    defineGateway<{ api: typeof api }>({
      deps: {
        api: {
          balancer: {
            hash: ({ path, input }) => {
              expectTypeOf(path).toEqualTypeOf<'get' | 'put'>()
              return input.key
            },
          },
        },
      },
    })
    // @ts-expect-error: not a role of the gateway's services
    defineGateway<{ api: typeof api }>({ deps: { orders: {} } })
  })
})
