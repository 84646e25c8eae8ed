import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { EtcdResolver, NEW_STORE_GRACE_MS } from '../../framework/discovery/etcd-resolver.js'
import { createEtcdClient } from '../../framework/registry/etcd-client.js'
import { servicesPrefix } from '../../framework/registry/record.js'
import { CallLoop } from '../support/call-loop.js'
import { whenNoLongerTried } from '../support/ejections.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { faultRow } from '../support/fault-summary.js'
import type { SpawnedInstance } from '../support/instance.js'
import { countBy, type Started, startRegistered } from '../support/spawned-app.js'
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
/** Generous bound on registering again: backoff is capped at 5 s (internal/backoff.ts); a loaded machine adds to it. */
const RECOVER_BOUND_MS = TTL * 1000 + 15_000
/** Margin for a watch to deliver what the test's own read has seen. */
const WATCH_MARGIN_MS = 2_000

const fixture = useEtcd('store-faults', TTL)
const cleanups: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function start(role: string, namespace: string, env?: Record<string, string>) {
  return startRegistered((r, ns) => fixture.spawn(r, ns, { env }), role, namespace)
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

/** When `caller` last logged that it lists a role again (after `from`), from its log lines. */
function relistedAt(caller: SpawnedInstance, from: number): number | undefined {
  return caller.lines
    .filter(
      (line) =>
        (line.time as number) >= from &&
        /listing again|store is new/.test(line.msg) &&
        line.role === 'cache',
    )
    .at(-1)?.time as number | undefined
}

function lostSince(started: Started, mark: number): boolean {
  return started.instance.lines.slice(mark).some((line) => line.msg.includes('registration lost'))
}

describe('faults of the etcd store under load (real etcd, real processes)', () => {
  it('etcd wiped and restarted empty: 0 failed calls, every live instance re-registers, resolvers relist without the dead one', async () => {
    const row = faultRow('etcd wiped (empty data dir) and restarted, a cache killed just before')
    const namespace = fixture.namespace()
    const caches = await Promise.all([1, 2, 3].map(() => start('cache', namespace)))
    const api = await start('api', namespace)
    const resolver = cacheResolver(namespace)
    await resolver.whenListed(5_000)
    expect(resolverIds(resolver)).toEqual(caches.map((cache) => cache.id).sort())
    const loop = loopOn(api.url)
    await loop.reached(300)
    const keysBefore = await phoneBookKeys(namespace)

    // A cache dies just before the wipe: its record would still be in the old store for a TTL.
    const dead = caches[2]!
    const servedByDead = countBy(loop.samples)[dead.id] ?? 0
    const live = [caches[0]!, caches[1]!, api]
    const marks = live.map((started) => started.instance.lines.length)
    const apiMark = api.instance.lines.length
    await dead.instance.kill('SIGKILL')
    const wipedAt = Date.now()
    await fixture.etcd.wipe()
    await fixture.etcd.start()
    const backAt = Date.now()

    await waitFor(
      'every live instance registered in the wiped etcd',
      async () => {
        const keys = await phoneBookKeys(namespace)
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
      NEW_STORE_GRACE_MS + 10_000,
      20,
    )
    // The api's own resolver follows the new store too: a cache started now gets its calls.
    const fresh = await start('cache', namespace)
    const freshAt = Date.now()
    await waitFor(
      'the cache started after the wipe to get traffic',
      () => loop.samples.some((sample) => sample.servedBy === fresh.id && sample.at >= freshAt),
      10_000,
      10,
    )
    await waitFor(
      'the resolver to add the cache started after the wipe',
      () => resolverIds(resolver).join() === [...liveCaches, fresh.id].sort().join(),
      10_000,
      20,
    )
    // The api relisted the new store; the dead cache missing from it is dropped after the grace.
    const apiRelistedAt = relistedAt(api.instance, wipedAt)
    const ejections = await whenNoLongerTried(api.instance, dead.id, { after: apiMark })
    await loop.reached(loop.samples.length + 300)
    await loop.stop()

    const keys = await phoneBookKeys(namespace)
    const lost = live.filter((started, i) => lostSince(started, marks[i]!))
    const lastTried = ejections.at(-1)
    row.measured({
      calls: loop.samples.length,
      failed: loop.failures.length,
      instances: keysBefore.length,
      lost: lost.length + (keys.includes(dead.key) ? 0 : 1),
      recovered: live.filter((started) => keys.includes(started.key)).length,
      recoverMs,
      note:
        `etcd down ${backAt - wipedAt} ms, ${loop.between(wipedAt, backAt + recoverMs).length} ` +
        `calls until every live instance was back; ${lost.length}/${live.length} live instances ` +
        're-registered without a restart, the killed cache did not; the api ejected the dead ' +
        `cache ${ejections.length}× (last ${lastTried ? lastTried.at - wipedAt : '–'} ms after ` +
        'the wipe) and stopped trying it; a new cache got calls',
    })

    expect(servedByDead, 'the killed cache served no call before').toBeGreaterThan(0)
    expect(loop.failures).toEqual([])
    expect(loop.between(wipedAt, backAt + recoverMs).length).toBeGreaterThan(0)
    expect(lost.map((started) => started.id)).toEqual(live.map((started) => started.id))
    // Exactly the live instances: nothing stale (the dead cache), nothing twice.
    expect(keys).toEqual([...live.map((started) => started.key), fresh.key].sort())
    expect(resolverIds(resolver)).toEqual([...liveCaches, fresh.id].sort())
    expect(apiRelistedAt, 'the api never listed the new store').toBeDefined()
    // The api met the dead cache (connections refused) and stopped once it had dropped it.
    expect(ejections.length).toBeGreaterThan(0)
    expect(lastTried!.at).toBeLessThanOrEqual(apiRelistedAt! + NEW_STORE_GRACE_MS + WATCH_MARGIN_MS)
    row.passed()
  }, 120_000)

  it('api cut off from etcd while caches change and history is compacted + defragmented: 0 failed calls, the api relists', async () => {
    const row = faultRow(
      'api cut off from etcd; a cache killed, one started, history compacted + defragmented',
    )
    const namespace = fixture.namespace()
    const caches = await Promise.all([1, 2, 3].map(() => start('cache', namespace)))
    // The api reaches etcd through a proxy the test can cut: a partitioned host.
    const proxy = await TcpProxy.start(fixture.etcd.clientPort)
    cleanups.push(() => proxy.close())
    const api = await start('api', namespace, { ETCD_ENDPOINTS: proxy.url })
    const loop = loopOn(api.url)
    await loop.reached(300)
    const keysBefore = await phoneBookKeys(namespace)
    const dead = caches[0]!
    const servedByDead = countBy(loop.samples)[dead.id] ?? 0
    const apiMark = api.instance.lines.length

    const cutAt = Date.now()
    proxy.cut()
    // While the api cannot see etcd: one cache dies, a new one comes, unrelated writes pile up,
    // and the history the api's watch would resume from is compacted away and defragmented.
    await dead.instance.kill('SIGKILL')
    const fresh = await start('cache', namespace)
    const direct = fixture.probe.client
    for (let i = 0; i < 300; i++) {
      await direct.put(`/${namespace}/noise/n${i % 10}`).value(`noise ${i}`)
    }
    // The dead cache's lease runs out meanwhile (TTL), so its delete is in the compacted history;
    // so does the api's own, whose keepalives cannot get through.
    await waitFor(
      "the dead cache's and the api's records to expire",
      async () => {
        const keys = await phoneBookKeys(namespace)
        return !keys.includes(dead.key) && !keys.includes(api.key)
      },
      TTL * 1000 + 10_000,
    )
    const keysCutOff = await phoneBookKeys(namespace)
    const revision = (await direct.get(fresh.key).exec()).header.revision
    await direct.kv.compact({ revision, physical: true })
    await direct.maintenance.defragment()
    await expect(direct.kv.range({ key: Buffer.from(fresh.key), revision: 2 })).rejects.toThrow(
      /compacted/,
    )
    const callsCutOff = loop.between(cutAt).length

    const restoredAt = Date.now()
    proxy.restore()
    await waitFor(
      'the cache started while the api was cut off to get traffic',
      () => loop.samples.some((sample) => sample.servedBy === fresh.id),
      RECOVER_BOUND_MS,
      10,
    )
    const relistMs = Date.now() - restoredAt
    // The api's own record lapsed while it was cut off: it is back too.
    await waitFor(
      "the api's own record to be back",
      async () => (await phoneBookKeys(namespace)).includes(api.key),
      RECOVER_BOUND_MS,
      20,
    )
    const recoverMs = Date.now() - restoredAt
    const apiRelistedAt = relistedAt(api.instance, restoredAt)
    const ejections = await whenNoLongerTried(api.instance, dead.id, { after: apiMark })
    await loop.reached(loop.samples.length + 300)
    await loop.stop()

    const keys = await phoneBookKeys(namespace)
    const lastTried = ejections.at(-1)
    row.measured({
      calls: loop.samples.length,
      failed: loop.failures.length,
      instances: keysBefore.length,
      lost: [dead.key, api.key].filter((key) => !keysCutOff.includes(key)).length,
      recovered: keys.includes(api.key) ? 1 : 0,
      recoverMs,
      note:
        `cut off ${restoredAt - cutAt} ms (${callsCutOff} calls meanwhile, on the last known ` +
        `caches); new cache got calls ${relistMs} ms after reconnect; the api's record back ` +
        `after ${recoverMs} ms; the api ejected the dead cache ${ejections.length}× and stopped ` +
        'trying it once it listed again',
    })
    expect(servedByDead, 'the killed cache served no call before').toBeGreaterThan(0)
    expect(loop.failures).toEqual([])
    expect(callsCutOff).toBeGreaterThan(0)
    expect(apiRelistedAt, 'the api never listed again after the reconnect').toBeDefined()
    expect(keys).toEqual([caches[1]!.key, caches[2]!.key, fresh.key, api.key].sort())
    expect(ejections.length).toBeGreaterThan(0)
    expect(lastTried!.at).toBeLessThanOrEqual(apiRelistedAt! + WATCH_MARGIN_MS)
    row.passed()
  }, 120_000)
})
