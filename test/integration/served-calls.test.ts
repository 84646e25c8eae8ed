import { afterAll, beforeAll, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import kitchen from '../fixtures/app/services/kitchen/index.js'
import { startInProcess, withDependencies } from '../support/in-process.js'

// An instance counts the calls it served per procedure, on every transport, and logs the counts
// on its `stopped` line: what a stopped instance did can be checked after it is gone.

const NAMESPACE = 'served-calls'
let etcd: EtcdServer
let running: RunningInstance

beforeAll(async () => {
  etcd = await EtcdServer.start()
  running = await startInProcess(kitchen, etcd.endpoint, NAMESPACE)
})

afterAll(async () => {
  await running?.stop()
  await etcd?.dispose()
})

it('counts each call of each procedure once, whatever the transport and the outcome; unknown paths not at all', async () => {
  for (const stream of [true, false]) {
    await withDependencies(
      etcd.endpoint,
      NAMESPACE,
      ['kitchen'],
      async (deps) => {
        await deps.waitForInstances(5_000)
        const client = deps.clients.get('kitchen')!
        await client.call('add', { n: 0 })
        await expect(client.call('add', { n: 'x' })).rejects.toThrow(/BAD_REQUEST|invalid/i)
        await Promise.all([client.call('echo', { text: 'a' }), client.call('echo', { text: 'b' })])
      },
      { stream },
    )
  }
  const { url } = running.instance
  // tRPC's own adapter: a single mutation, a batch of two queries, an unknown procedure.
  await (
    await fetch(`${url}/trpc/add`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"n":0}',
    })
  ).text()
  const input = encodeURIComponent(JSON.stringify({ 0: { text: 'c' }, 1: { text: 'd' } }))
  await (await fetch(`${url}/trpc/echo,echo?batch=1&input=${input}`)).text()
  await (await fetch(`${url}/trpc/nope`)).text()
  expect(running.served.snapshot()).toEqual({ add: 5, echo: 6 })
})
