import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import type { TransportOptions } from '../../framework/client/http-transport.js'
import { defineService, initService, TRPCError } from '../../framework/index.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import { startInProcess, withDependencies } from '../support/in-process.js'

// "All of them run the same procedures with the same validation, middleware and ctx": a service
// with a middleware that stamps ctx and one that refuses, called every way in: the RPC stream,
// single /_rpc requests, /_rpc/_batch, and tRPC's adapter at /trpc.

const NAMESPACE = 'middleware'
/** Each middleware run: `<type> <path>`, in order. */
const runs: string[] = []

const t = initService()
const stamped = t.procedure.use(({ ctx, path, type, next }) => {
  runs.push(`${type} ${path}`)
  return next({ ctx: { ...ctx, stamp: `stamped ${path}` } })
})
const refused = t.procedure.use(() => {
  throw new TRPCError({ code: 'FORBIDDEN', message: 'refused by middleware' })
})

const service = defineService({
  role: 'guarded',
  router: t.router({
    who: stamped
      .input(z.object({ n: z.number() }))
      .query(({ ctx, input }) => ({ stamp: ctx.stamp, instance: ctx.instance.id, n: input.n })),
    bump: stamped
      .input(z.object({ n: z.number() }))
      .mutation(({ ctx, input }) => ({ stamp: ctx.stamp, n: input.n + 1 })),
    secret: refused.query(() => 'never'),
  }),
})

let etcd: EtcdServer
let running: RunningInstance
let url: string
let upgrades = 0
const requestPaths: string[] = []

beforeAll(async () => {
  etcd = await EtcdServer.start()
  running = await startInProcess(service, etcd.endpoint, NAMESPACE)
  url = running.instance.url
  running.server.on('upgrade', () => {
    upgrades++
  })
  running.server.on('request', (req) => {
    requestPaths.push(new URL(req.url ?? '/', 'http://x').pathname)
  })
})

afterAll(async () => {
  await running?.stop()
  await etcd?.dispose()
})

type TrpcAnswer = { result?: { data: unknown }; error?: { message: string } }

/** Calls `who`, `bump` and `secret` through ctx.deps' client on `transport`, `who` 3× at once. */
async function callAll(transport: TransportOptions) {
  return withDependencies(
    etcd.endpoint,
    NAMESPACE,
    ['guarded'],
    async (deps) => {
      await deps.waitForInstances(10_000)
      const client = deps.clients.get('guarded')!
      const who = await Promise.all([1, 2, 3].map((n) => client.call('who', { n })))
      const bump = await client.call('bump', { n: 1 })
      const secret = await client.call('secret', undefined).catch((err: Error) => err)
      const invalid = await client.call('who', { n: 'one' }).catch((err: Error) => err)
      return { who, bump, secret, invalid }
    },
    transport,
  )
}

function expectSameAnswers(answers: Awaited<ReturnType<typeof callAll>>): void {
  expect(answers.who).toEqual(
    [1, 2, 3].map((n) => ({ stamp: 'stamped who', instance: running.instance.id, n })),
  )
  expect(answers.bump).toEqual({ stamp: 'stamped bump', n: 2 })
  expect(answers.secret).toMatchObject({ code: 'FORBIDDEN' })
  expect((answers.secret as Error).message).toContain('refused by middleware')
  // Validation runs after the middleware, the same everywhere.
  expect(answers.invalid).toMatchObject({ code: 'BAD_REQUEST' })
}

describe('middleware and ctx, every way in', () => {
  it('over the RPC stream', async () => {
    runs.length = 0
    const upgradesBefore = upgrades
    const requestsBefore = requestPaths.length
    expectSameAnswers(await callAll({ stream: true }))
    expect(upgrades - upgradesBefore).toBe(1)
    expect(requestPaths.length - requestsBefore).toBe(0)
    expect(runs).toEqual(['query who', 'query who', 'query who', 'mutation bump', 'query who'])
  })

  it('over /_rpc requests, single and batched', async () => {
    runs.length = 0
    const requestsBefore = requestPaths.length
    expectSameAnswers(await callAll({ stream: false }))
    const paths = requestPaths.slice(requestsBefore)
    // The three `who` calls of one tick went as one batch; the others one request each.
    expect(paths).toContain('/_rpc/_batch')
    expect(paths).toContain('/_rpc/bump')
    expect(runs).toEqual(['query who', 'query who', 'query who', 'mutation bump', 'query who'])
  })

  it("over tRPC's adapter at /trpc", async () => {
    runs.length = 0
    const get = async (path: string, input: unknown) => {
      const response = await fetch(
        `${url}/trpc/${path}?input=${encodeURIComponent(JSON.stringify(input))}`,
      )
      return { status: response.status, body: (await response.json()) as TrpcAnswer }
    }
    const who = await get('who', { n: 1 })
    expect(who.body.result?.data).toEqual({
      stamp: 'stamped who',
      instance: running.instance.id,
      n: 1,
    })
    const bump = await fetch(`${url}/trpc/bump`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ n: 1 }),
    })
    expect(((await bump.json()) as TrpcAnswer).result?.data).toEqual({
      stamp: 'stamped bump',
      n: 2,
    })
    const secret = await get('secret', undefined)
    expect(secret.status).toBe(403)
    expect(secret.body.error?.message).toContain('refused by middleware')
    expect(runs).toEqual(['query who', 'mutation bump'])
  })
})
