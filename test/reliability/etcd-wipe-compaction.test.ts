import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { EtcdResolver } from '../../framework/discovery/etcd-resolver.js'
import { createEtcdClient } from '../../framework/registry/etcd-client.js'
import { instanceKey, servicesPrefix } from '../../framework/registry/record.js'
import { CallLoop } from '../support/call-loop.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { recordFault } from '../support/fault-summary.js'
import type { SpawnedInstance } from '../support/instance.js'
import { TcpProxy } from '../support/tcp-proxy.js'
import { waitFor } from '../support/wait.js'

/**
 * The whole app (three caches, an api relaying to them) against faults of its etcd's store:
 * a wipe (empty data dir: revision backwards, leases unknown) and a compaction + defrag that
 * erases the history a cut-off api would have resumed its watch from. Calls must not fail, every
 * live instance must be back in the phone book, and clients must list the new truth: no record
 * of a dead instance, no missing one.
 */

const TTL = 2
/** Registration backoff is capped at 5 s (internal/backoff.ts); a TTL and an election on top. */
const RECOVER_BOUND_MS = TTL * 1000 + 8_000

const fixture = useEtcd('store-faults', TTL)
const cleanups: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

interface Started {
  instance: SpawnedInstance
  url: string
  id: string
  key: string
}

async function start(role: string, namespace: string, env?: Record<string, string>) {
  const instance = fixture.spawn(role, namespace, { env })
  const { url, id } = await instance.listening()
  await instance.waitForLog('registered in etcd')
  return { instance, url, id, key: instanceKey(namespace, role, id) } satisfies Started
}

function loopOn(apiUrl: string): CallLoop {
  const loop = new CallLoop(apiUrl, 100_000, { concurrency: 4, pauseMs: 2, maxMs: 90_000 })
  cleanups.push(() => loop.stop())
  return loop
}

/** A client's resolver for `cache`, as a service's ctx.deps has, on its own etcd client. */
function cacheResolver(namespace: string): EtcdResolver {
  const client = createEtcdClient([fixture.etcd.endpoint])
  const resolver = new EtcdResolver(client, 'cache', namespace, pino({ level: 'silent' }))
  cleanups.push(async () => {
    await resolver.close()
    client.close()
  })
  return resolver
}

function resolverIds(resolver: EtcdResolver): string[] {
  return resolver.endpoints.map((endpoint) => endpoint.id).sort()
}

async function phoneBookKeys(namespace: string): Promise<string[]> {
  const keys = await fixture.probe.client.getAll().prefix(servicesPrefix(namespace)).keys()
  return keys.sort()
}

describe('faults of the etcd store under load (real etcd, real processes)', () => {
  it('etcd wiped and restarted empty: 0 failed calls, every live instance re-registers, resolvers relist without the dead one', async () => {
    const namespace = fixture.namespace()
    const caches = await Promise.all([1, 2, 3].map(() => start('cache', namespace)))
    const api = await start('api', namespace)
    const resolver = cacheResolver(namespace)
    await resolver.whenListed(5_000)
    expect(resolverIds(resolver)).toEqual(caches.map((cache) => cache.id).sort())
    const loop = loopOn(api.url)
    await loop.reached(300)

    // A cache dies just before the wipe: its record would still be in the old store for a TTL.
    const dead = caches[2]!
    await dead.instance.kill('SIGKILL')
    const live = [caches[0]!, caches[1]!, api]
    const wipedAt = Date.now()
    await fixture.etcd.wipe()
    await fixture.etcd.start()
    const backAt = Date.now()

    await waitFor(
      'every live instance registered in the wiped etcd',
      async () => {
        const keys = await phoneBookKeys(namespace).catch((): string[] => [])
        return live.every((started) => keys.includes(started.key))
      },
      RECOVER_BOUND_MS,
      20,
    )
    const recoverMs = Date.now() - backAt
    const liveCaches = [caches[0]!.id, caches[1]!.id].sort()
    await waitFor(
      'the resolver to list the new store',
      () => !resolver.stale && resolverIds(resolver).join() === liveCaches.join(),
      5_000,
      20,
    )
    // The api's own resolver follows the new store too: a cache started now gets its calls.
    const fresh = await start('cache', namespace)
    const freshAt = Date.now()
    await waitFor(
      'the cache started after the wipe to get traffic',
      () => loop.samples.some((sample) => sample.servedBy === fresh.id && sample.at >= freshAt),
      5_000,
      10,
    )
    await waitFor(
      'the resolver to add the cache started after the wipe',
      () => resolverIds(resolver).join() === [...liveCaches, fresh.id].sort().join(),
      5_000,
      20,
    )
    await loop.reached(loop.samples.length + 300)
    await loop.stop()

    const keys = await phoneBookKeys(namespace)
    const reregistered = live.filter((started) => started.instance.count('registered in etcd') > 1)
    recordFault({
      fault: 'etcd wiped (empty data dir) and restarted, a cache killed just before',
      calls: loop.samples.length,
      failed: loop.failures.length,
      lost: live.length,
      recovered: live.filter((started) => keys.includes(started.key)).length,
      instances: live.length,
      recoverMs,
      note:
        `etcd down ${backAt - wipedAt} ms; ${reregistered.length}/${live.length} re-registered ` +
        'without a restart; dead cache absent; a new cache got calls',
    })
    expect(loop.failures).toEqual([])
    expect(reregistered).toHaveLength(live.length)
    // Exactly the live instances: nothing stale (the dead cache), nothing twice.
    expect(keys).toEqual([...live.map((started) => started.key), fresh.key].sort())
    expect(resolverIds(resolver)).toEqual([...liveCaches, fresh.id].sort())
    expect(
      loop.samples.filter((sample) => sample.at > backAt + 1_000 && sample.servedBy === dead.id),
    ).toEqual([])
  }, 90_000)

  it('api cut off from etcd while caches change and history is compacted + defragmented: 0 failed calls, the api relists', async () => {
    const namespace = fixture.namespace()
    const caches = await Promise.all([1, 2, 3].map(() => start('cache', namespace)))
    // The api reaches etcd through a proxy the test can cut: a partitioned host.
    const proxy = await TcpProxy.start(fixture.etcd.clientPort)
    cleanups.push(() => proxy.close())
    const api = await start('api', namespace, { ETCD_ENDPOINTS: proxy.url })
    const loop = loopOn(api.url)
    await loop.reached(300)

    const cutAt = Date.now()
    proxy.cut()
    // While the api cannot see etcd: one cache dies, a new one comes, unrelated writes pile up,
    // and the history the api's watch would resume from is compacted away and defragmented.
    const dead = caches[0]!
    await dead.instance.kill('SIGKILL')
    const fresh = await start('cache', namespace)
    const direct = fixture.probe.client
    for (let i = 0; i < 300; i++) {
      await direct.put(`/${namespace}/noise/n${i % 10}`).value(`noise ${i}`)
    }
    // The dead cache's lease runs out meanwhile (TTL), so its delete is in the compacted history.
    await waitFor(
      'the dead cache record to expire',
      async () => {
        const keys = await phoneBookKeys(namespace)
        return !keys.includes(dead.key)
      },
      TTL * 1000 + 2_000,
    )
    const revision = (await direct.get(fresh.key).exec()).header.revision
    await direct.kv.compact({ revision, physical: true })
    await direct.maintenance.defragment()
    await expect(direct.kv.range({ key: Buffer.from(fresh.key), revision: 2 })).rejects.toThrow(
      /compacted/,
    )
    const callsCutOff = loop.samples.filter((sample) => sample.at >= cutAt).length

    const restoredAt = Date.now()
    proxy.restore()
    await waitFor(
      'the cache started while the api was cut off to get traffic',
      () => loop.samples.some((sample) => sample.servedBy === fresh.id),
      RECOVER_BOUND_MS,
      10,
    )
    const relistMs = Date.now() - restoredAt
    // The api's own record lapsed while it was cut off (longer than a TTL): it is back too.
    await waitFor(
      "the api's own record to be back",
      async () => (await phoneBookKeys(namespace)).includes(api.key),
      RECOVER_BOUND_MS,
      20,
    )
    const recoverMs = Date.now() - restoredAt
    await loop.reached(loop.samples.length + 300)
    await loop.stop()

    const keys = await phoneBookKeys(namespace)
    recordFault({
      fault: 'api cut off from etcd; a cache killed, one started, history compacted + defragmented',
      calls: loop.samples.length,
      failed: loop.failures.length,
      lost: 1,
      recovered: keys.includes(api.key) ? 1 : 0,
      instances: 4,
      recoverMs,
      note:
        `cut off ${restoredAt - cutAt} ms (${callsCutOff} calls meanwhile, on the last known ` +
        `caches); new cache got calls ${relistMs} ms after reconnect; the api's record back after ${recoverMs} ms`,
    })
    expect(loop.failures).toEqual([])
    expect(
      api.instance.count('watch reconnected') + api.instance.count('watch failed'),
    ).toBeGreaterThan(0)
    expect(keys).toEqual([caches[1]!.key, caches[2]!.key, fresh.key, api.key].sort())
    expect(
      loop.samples.filter(
        (sample) => sample.at > restoredAt + 1_000 && sample.servedBy === dead.id,
      ),
    ).toEqual([])
  }, 90_000)
})
