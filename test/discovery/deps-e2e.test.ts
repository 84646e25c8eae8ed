import { describe, expect, it } from 'vitest'
import { rolePrefix } from '../../framework/registry/record.js'
import { CallLoop } from '../support/call-loop.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { recordFault } from '../support/fault-summary.js'
import type { SpawnedInstance } from '../support/instance.js'
import { waitFor } from '../support/wait.js'

const TTL = 2

const cluster = useEtcd('deps', TTL)

interface Started {
  instance: SpawnedInstance
  url: string
  id: string
  registeredAt: number
}

async function start(role: string, namespace: string): Promise<Started> {
  const instance = cluster.spawn(role, namespace)
  const { url, id } = await instance.listening()
  const registered = await instance.waitForLog('registered in etcd')
  return { instance, url, id, registeredAt: registered.time as number }
}

/** Three cache instances and one api depending on cache, in a fresh namespace. */
async function startApp() {
  const namespace = cluster.namespace()
  const caches = await Promise.all([1, 2, 3].map(() => start('cache', namespace)))
  const api = await start('api', namespace)
  return { namespace, caches, api }
}

async function cacheStats(cache: Started): Promise<{ hits: number; misses: number }> {
  const response = await fetch(`${cache.url}/trpc/stats`)
  const body = (await response.json()) as { result: { data: { hits: number; misses: number } } }
  return body.result.data
}

function countBy(samples: { servedBy?: string }[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const sample of samples) {
    if (sample.servedBy) counts[sample.servedBy] = (counts[sample.servedBy] ?? 0) + 1
  }
  return counts
}

describe('ctx.deps through discovery (real etcd, real processes)', () => {
  it('spreads calls across all three cache instances', async () => {
    const { caches, api } = await startApp()
    const loop = new CallLoop(api.url, 300, { concurrency: 4 })
    await loop.done
    expect(loop.failures).toEqual([])
    const served = countBy(loop.samples)
    expect(Object.keys(served).sort()).toEqual(caches.map((cache) => cache.id).sort())
    for (const cache of caches) {
      const stats = await cacheStats(cache)
      // Each instance's own counters agree with what the api saw.
      expect(stats.hits + stats.misses).toBe(served[cache.id])
      expect(stats.hits + stats.misses).toBeGreaterThan(30)
    }
  })

  it('kill -9 of one cache during 2,000 calls: 0 failed calls', async () => {
    const { caches, api } = await startApp()
    const loop = new CallLoop(api.url, 2_000, { concurrency: 8 })
    await loop.reached(500)
    await caches[0]!.instance.kill('SIGKILL')
    const killedAt = Date.now()
    await loop.done
    const after = loop.samples.filter((sample) => sample.at > killedAt + 100)
    recordFault({
      fault: 'kill -9 of one of 3 caches during calls',
      calls: loop.samples.length,
      failed: loop.failures.length,
      lost: 1,
      instances: 3,
      note: `${after.length} calls after the kill, none to the killed cache`,
    })
    expect(loop.samples).toHaveLength(2_000)
    expect(loop.failures).toEqual([])
    expect(after.length).toBeGreaterThan(100)
    expect(after.every((sample) => sample.servedBy !== caches[0]!.id)).toBe(true)
  })

  it('SIGTERM of one cache during 2,000 calls: 0 failed calls; a new instance gets traffic within 1 s', async () => {
    const { namespace, caches, api } = await startApp()
    const loop = new CallLoop(api.url, 2_000, { concurrency: 8, pauseMs: 2 })
    await loop.reached(300)
    caches[1]!.instance.child.kill('SIGTERM')
    expect(await caches[1]!.instance.exited).toBe(0)
    const fresh = await start('cache', namespace)
    await loop.done
    const first = loop.samples.find((sample) => sample.servedBy === fresh.id)
    recordFault({
      fault: 'SIGTERM of one of 3 caches during calls, a new one started',
      calls: loop.samples.length,
      failed: loop.failures.length,
      lost: 1,
      instances: 3,
      recoverMs: first ? first.at - fresh.registeredAt : undefined,
      note: 'time to recover = the new cache registered → its first call',
    })
    expect(loop.failures).toEqual([])
    expect(first, 'the new instance got no call').toBeDefined()
    expect(first!.at - fresh.registeredAt).toBeLessThanOrEqual(1_000)
  })

  it('etcd stopped: calls keep succeeding on known instances; etcd back: adds and removes tracked again', async () => {
    const { namespace, caches, api } = await startApp()
    await cluster.etcd.stop()
    const stoppedAt = Date.now()
    const during = new CallLoop(api.url, 300, { concurrency: 4 })
    await during.done
    expect(during.failures).toEqual([])
    expect(Object.keys(countBy(during.samples)).sort()).toEqual(caches.map((c) => c.id).sort())
    // Longer than the TTL: the leases lapse, so the caches must register again.
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, stoppedAt + TTL * 1000 + 500 - Date.now())),
    )

    await cluster.etcd.start()
    const prefix = rolePrefix(namespace, 'cache')
    const recoverMs = await waitFor('every cache registered again', async () => {
      const keys = await cluster.probe.client
        .getAll()
        .prefix(prefix)
        .keys()
        .catch((): string[] => [])
      return caches.every((cache) => keys.includes(`${prefix}${cache.id}`))
    })
    // Then a new one joins and an old one leaves.
    const fresh = await start('cache', namespace)
    await caches[2]!.instance.kill('SIGTERM')
    const after = new CallLoop(api.url, 300, { concurrency: 4 })
    await after.done
    expect(after.failures).toEqual([])
    const served = countBy(after.samples)
    recordFault({
      fault: 'single etcd stopped for longer than the TTL during calls',
      calls: during.samples.length + after.samples.length,
      failed: during.failures.length + after.failures.length,
      lost: caches.length,
      recovered: caches.length,
      instances: caches.length,
      recoverMs,
      note: 'calls went to the last known caches; after restart a new cache got calls and a stopped one none',
    })
    expect(served[fresh.id]).toBeGreaterThan(0)
    expect(served[caches[2]!.id]).toBeUndefined()
  })

  it('all instances gone: the call fails in < 100 ms with a message naming role, namespace and etcd', async () => {
    const { namespace, caches, api } = await startApp()
    await Promise.all(caches.map((cache) => cache.instance.kill('SIGTERM')))
    await waitFor('cache keys gone', async () => {
      const entries = await cluster.probe.client
        .getAll()
        .prefix(rolePrefix(namespace, 'cache'))
        .keys()
      return entries.length === 0
    })
    await new Promise((resolve) => setTimeout(resolve, 100)) // the api's watch has seen the deletes
    const input = encodeURIComponent(JSON.stringify({ key: 'k' }))
    // Warm the connection and tRPC's standard adapter (express is loaded at its first request).
    await (await fetch(`${api.url}/trpc/warmup`)).arrayBuffer()
    const started = performance.now()
    const response = await fetch(`${api.url}/trpc/get?input=${input}`)
    const body = (await response.json()) as { error: { message: string; data: { code: string } } }
    const elapsed = performance.now() - started
    expect(response.status).toBe(503)
    expect(body.error.data.code).toBe('SERVICE_UNAVAILABLE')
    expect(body.error.message).toContain("no live instance of role 'cache'")
    expect(body.error.message).toContain(`namespace '${namespace}'`)
    expect(body.error.message).toContain(cluster.etcd.endpoint)
    expect(elapsed).toBeLessThan(100)
  })

  it('junk records put by hand are skipped with one warning each; calls unaffected', async () => {
    const { namespace, api } = await startApp()
    const prefix = rolePrefix(namespace, 'cache')
    await cluster.probe.client.put(`${prefix}junk-not-json`).value('{not json')
    await cluster.probe.client
      .put(`${prefix}junk-v2`)
      .value(JSON.stringify({ v: 2, role: 'cache', id: 'junk-v2', url: 'http://127.0.0.1:1' }))
    await cluster.probe.client
      .put(`${prefix}junk-no-url`)
      .value(JSON.stringify({ v: 1, role: 'cache', id: 'junk-no-url' }))
    const loop = new CallLoop(api.url, 300, { concurrency: 4 })
    await loop.done
    expect(loop.failures).toEqual([])
    for (const id of ['junk-not-json', 'junk-v2', 'junk-no-url']) {
      const warnings = api.instance.lines.filter(
        (line) =>
          line.msg.includes('skipping malformed phone book record') &&
          line.key === `${prefix}${id}`,
      )
      expect(warnings, id).toHaveLength(1)
    }
  })
})
