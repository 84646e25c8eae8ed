import { describe, expect, it } from 'vitest'
import { rolePrefix } from '../../framework/registry/record.js'
import { CallLoop } from '../support/call-loop.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { cacheStats, countBy, startExampleApp } from '../support/spawned-app.js'
import { waitFor } from '../support/wait.js'

const TTL = 2

const cluster = useEtcd('deps', TTL)

function startApp() {
  return startExampleApp((role, namespace) => cluster.spawn(role, namespace), cluster.namespace())
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
      const stats = await cacheStats(cache.url)
      // Each instance's own counters agree with what the api saw.
      expect(stats.hits + stats.misses).toBe(served[cache.id])
      expect(stats.hits + stats.misses).toBeGreaterThan(30)
    }
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
    await fetch(`${api.url}/healthz`) // warm the connection
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
})
