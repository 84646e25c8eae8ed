import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { instanceKey } from '../../framework/registry/record.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import kitchen from '../fixtures/app/services/kitchen/index.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { startInProcess, withDependencies } from '../support/in-process.js'
import { REPO_ROOT } from '../support/instance.js'
import { waitFor } from '../support/wait.js'

// Graceful stops with calls in flight: the instance leaves the phone book first, then answers
// what it was given before it exits.

const FIXTURE_APP = resolve(REPO_ROOT, 'test/fixtures/app')
const NAMESPACE = 'drain'

const cluster = useEtcd('drain', 2)

function startKitchen(): Promise<RunningInstance> {
  return startInProcess(kitchen, cluster.etcd.endpoint, NAMESPACE, {
    FRAMEWORK_MAX_BODY_BYTES: '4096',
  })
}

describe('draining', () => {
  it('SIGTERM: the key is gone within 500 ms while a slow in-flight request completes; exit 0', async () => {
    const ns = cluster.namespace()
    const instance = cluster.spawn('slow', ns, {
      env: { FRAMEWORK_TTL: '10' },
      appRoot: FIXTURE_APP,
    })
    const { url, id } = await instance.listening()
    await instance.waitForLog('registered in etcd')
    const key = instanceKey(ns, 'slow', id)
    const slow = fetch(
      `${url}/trpc/sleep?input=${encodeURIComponent(JSON.stringify({ ms: 1500 }))}`,
    )
    await new Promise((resolve) => setTimeout(resolve, 100)) // the request is in flight
    const sentAt = Date.now()
    instance.child.kill('SIGTERM')
    await waitFor('key to be revoked', async () => !(await cluster.probe.has(key)), 2_000, 10)
    expect(Date.now() - sentAt).toBeLessThan(500)
    const response = await slow
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({ result: { data: { sleptMs: 1500 } } })
    expect(await instance.exited).toBe(0)
    expect(instance.count('drained in-flight requests')).toBe(1)
  })

  it('SIGTERM-style stop while 300 mutations are in flight: goaway, every mutation answered exactly once, none failed', async () => {
    // One instance stays, one drains: the calls the draining one stops taking go to the other.
    const staying = await startKitchen()
    const draining = await startKitchen()
    try {
      await withDependencies(cluster.etcd.endpoint, NAMESPACE, ['kitchen'], async (deps) => {
        const client = deps.clients.get('kitchen')!
        const resolver = deps.resolvers.get('kitchen')!
        await waitFor('both kitchens listed', () => resolver.endpoints.length === 2, 10_000)
        await client.call('echo', { text: 'warm' })
        // Both instances run in this process and share the kitchen's running total.
        const before = (await client.call('add', { n: 0 })) as number
        // Slow queries keep the stream busy while the instance drains; mutations go to whichever
        // instance the balancer picks: both are fine as long as none fails.
        const slow = Array.from({ length: 20 }, () => client.call('sleep', { ms: 300 }))
        const mutations = Array.from({ length: 300 }, () => client.call('add', { n: 1 }))
        const stopping = draining.stop()
        const results = await Promise.allSettled([...slow, ...mutations])
        await stopping
        const failed = results.filter((result) => result.status === 'rejected')
        expect(failed.map((result) => String((result as PromiseRejectedResult).reason))).toEqual([])
        const totals = results
          .slice(slow.length)
          .map((result) => (result as PromiseFulfilledResult<number>).value)
        // Exactly once: 300 distinct running totals, and the total grew by exactly 300.
        expect(new Set(totals).size).toBe(300)
        expect(await client.call('add', { n: 0 })).toBe(before + 300)
      })
    } finally {
      await draining.stop()
      await staying.stop()
    }
  })
})
