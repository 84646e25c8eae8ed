import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { defineService, initService } from '../../framework/index.js'
import {
  CALLER_KEY,
  type CallMetadata,
  encodeCaller,
  REQUEST_ID_KEY,
} from '../../framework/protocol/metadata.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import { startInProcess, withDependencies } from '../support/in-process.js'
import { waitFor } from '../support/wait.js'

const e = initService()
/** B: says what metadata reached it. */
const echo = defineService({
  role: 'meta-echo',
  router: e.router({
    who: e.procedure.query(({ ctx }) => {
      ctx.log.info('who')
      return { requestId: ctx.requestId ?? null, caller: ctx.caller ?? null }
    }),
  }),
})

const r = initService<{ 'meta-echo': typeof echo }>()
/** A: what reached it, and what reached B through its ctx.deps. */
const relay = defineService({
  role: 'meta-relay',
  deps: { 'meta-echo': true },
  router: r.router({
    who: r.procedure.query(async ({ ctx }) => ({
      own: { requestId: ctx.requestId ?? null, caller: ctx.caller ?? null },
      nested: await ctx.deps['meta-echo'].who(),
    })),
  }),
})

const NS = 'call-metadata'
let etcd: EtcdServer
const instances: RunningInstance[] = []
let relayUrl: string

beforeAll(async () => {
  etcd = await EtcdServer.start()
  instances.push(await startInProcess(echo, etcd.endpoint, NS))
  const a = await startInProcess(relay, etcd.endpoint, NS)
  instances.push(a)
  relayUrl = a.instance.url
  await waitFor('both registered', () => instances.every((i) => i.registration.registered))
  await waitFor('the relay sees meta-echo', () =>
    Boolean(a.deps?.resolvers.get('meta-echo')?.endpoints.length),
  )
})

afterAll(async () => {
  for (const instance of instances) await instance.stop()
  await etcd?.dispose()
})

const caller = { id: 'u-7', name: 'Zoë' }
const metadataFor = (requestId: string): CallMetadata => ({
  [REQUEST_ID_KEY]: requestId,
  [CALLER_KEY]: encodeCaller(caller) as string,
})
const expected = (requestId: string) => ({
  own: { requestId, caller },
  nested: { requestId, caller },
})

describe('call metadata reaches nested calls', () => {
  it('over tRPC requests (/trpc) and single fast-path requests (/_rpc): headers', async () => {
    for (const path of ['/trpc/who', '/_rpc/who']) {
      const response = await fetch(`${relayUrl}${path}`, { headers: metadataFor(`req${path}`) })
      expect(response.status, path).toBe(200)
      expect(((await response.json()) as { result: { data: unknown } }).result.data).toEqual(
        expected(`req${path}`),
      )
    }
  })

  it('without metadata: none reaches the service or its nested calls', async () => {
    const response = await fetch(`${relayUrl}/_rpc/who`)
    expect(((await response.json()) as { result: { data: unknown } }).result.data).toEqual({
      own: { requestId: null, caller: null },
      nested: { requestId: null, caller: null },
    })
  })

  it.each([
    ['the RPC stream', true],
    ['requests (single and batched)', false],
  ])('from a client over %s, each call its own', async (_name, stream) => {
    await withDependencies(
      etcd.endpoint,
      NS,
      ['meta-relay'],
      async (deps) => {
        const client = deps.clients.get('meta-relay')!
        // 20 calls in one tick: one batch request without the stream, frames on it with it.
        const answers = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            client.call('who', undefined, undefined, undefined, metadataFor(`r-${stream}-${i}`)),
          ),
        )
        answers.forEach((answer, i) => {
          expect(answer).toEqual(expected(`r-${stream}-${i}`))
        })
        const lone = await client.call('who', undefined, undefined, undefined, metadataFor('lone'))
        expect(lone).toEqual(expected('lone'))
      },
      { stream },
    )
  })

  it('bad metadata is the caller’s 400, on every path', async () => {
    const bad = { [REQUEST_ID_KEY]: 'x'.repeat(200) }
    for (const path of ['/trpc/who', '/_rpc/who']) {
      const response = await fetch(`${relayUrl}${path}`, { headers: bad })
      expect(response.status, path).toBe(400)
      expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(
        /x-request-id is invalid/,
      )
    }
    const notJson = await fetch(`${relayUrl}/_rpc/who`, {
      headers: { [CALLER_KEY]: 'bm90IGpzb24' },
    })
    expect(notJson.status).toBe(400)
    const batch = await fetch(`${relayUrl}/_rpc/_batch`, {
      method: 'POST',
      body: JSON.stringify([['who', 'query', null, 1000, bad]]),
    })
    expect(batch.status).toBe(400)
  })
})
