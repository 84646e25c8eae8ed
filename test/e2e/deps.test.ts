import { describe, expect, it } from 'vitest'
import { DEFAULT_TIMEOUT_MS } from '../../framework/client/dependency-client.js'
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

  it('all instances gone: the call fails with SERVICE_UNAVAILABLE naming role, namespace and etcd, without waiting for its deadline', async () => {
    const { namespace, caches, api } = await startApp()
    await Promise.all(caches.map((cache) => cache.instance.kill('SIGTERM')))
    await waitFor('cache keys gone', async () => {
      const entries = await cluster.probe.client
        .getAll()
        .prefix(rolePrefix(namespace, 'cache'))
        .keys()
      return entries.length === 0
    })
    const input = encodeURIComponent(JSON.stringify({ key: 'k' }))
    type Answer = {
      status: number
      ms: number
      body: { error: { message: string; data: { code: string } } }
    }
    let answer: Answer = { status: 0, ms: 0, body: { error: { message: '', data: { code: '' } } } }
    // Until the api's watch has seen the deletes, a call may still meet a stopping cache.
    await waitFor('the api to answer 503', async () => {
      const started = performance.now()
      const response = await fetch(`${api.url}/trpc/get?input=${input}`)
      const body = (await response.json()) as Answer['body']
      answer = { status: response.status, body, ms: performance.now() - started }
      return answer.status === 503
    })
    expect(answer.body.error.data.code).toBe('SERVICE_UNAVAILABLE')
    expect(answer.body.error.message).toContain("no live instance of role 'cache'")
    expect(answer.body.error.message).toContain(`namespace '${namespace}'`)
    expect(answer.body.error.message).toContain(cluster.etcd.endpoint)
    // "At once": not after the 10 s default deadline. How fast is measured in bench/call-overhead.
    expect(answer.ms).toBeLessThan(DEFAULT_TIMEOUT_MS / 2)
  })
})
