import type { Etcd3 } from 'etcd3'
import { describe, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { NEW_STORE_GRACE_MS } from '../../framework/discovery/etcd-resolver.js'
import { instanceKey } from '../../framework/registry/record.js'
import {
  CATCH_UP_MS,
  deleteInstance,
  directClient,
  ids,
  putInstance,
  ROLE,
  sameIds,
  startResolver,
  uniqueNamespace,
  useCleanups,
  waitForResolver,
} from '../support/resolver-harness.js'
import { TcpProxy } from '../support/tcp-proxy.js'

// EtcdResolver when etcd goes away for real: unreachable before the first listing, cut off while
// history is compacted, wiped and restarted empty, stopped and started again.

const cleanups = useCleanups()

describe('EtcdResolver when etcd goes away', () => {
  let client: Etcd3 | undefined

  /** An etcd of the test's own, disposed after the resolver is closed. */
  async function startEtcd(): Promise<EtcdServer> {
    const server = await EtcdServer.start()
    cleanups.push(async () => {
      client?.close()
      client = undefined
      await server.dispose()
    })
    return server
  }

  /** A fresh direct client (after a restart the old one may still be backing off). */
  function reconnect(server: EtcdServer): Etcd3 {
    client?.close()
    client = directClient(server.endpoint)
    return client
  }

  it('waits for a first listing while etcd is unreachable, and lists once it is reachable', async () => {
    const etcd = await startEtcd()
    const direct = reconnect(etcd)
    const ns = uniqueNamespace('first-list')
    await putInstance(direct, ns, 'a')
    const proxy = await TcpProxy.start(etcd.clientPort)
    cleanups.push(() => proxy.close())
    proxy.cut()

    const started = startResolver(proxy.url, ns, cleanups)
    const { resolver } = started
    const before = Date.now()
    await expect(resolver.whenListed(1_500)).rejects.toThrow(/could not list role 'cache'/)
    expect(Date.now() - before).toBeLessThan(5_000)
    expect(resolver.listed).toBe(false)
    expect(resolver.stale).toBe(true)
    expect(resolver.lastError).toBeDefined()
    expect(resolver.endpoints).toEqual([])

    const waiting = resolver.whenListed(CATCH_UP_MS)
    proxy.restore()
    await waiting
    expect(ids(resolver)).toEqual(['a'])
    expect(resolver.stale).toBe(false)
  })

  it('keeps the last known set while cut off, then relists past a compaction', async () => {
    const etcd = await startEtcd()
    const direct = reconnect(etcd)
    const ns = uniqueNamespace('compaction')
    for (const id of ['a', 'b', 'c']) await putInstance(direct, ns, id)

    const proxy = await TcpProxy.start(etcd.clientPort)
    cleanups.push(() => proxy.close())
    const started = startResolver(proxy.url, ns, cleanups)
    const { resolver } = started
    await resolver.whenListed(CATCH_UP_MS)
    expect(ids(resolver)).toEqual(['a', 'b', 'c'])
    // Nothing left to learn before the cut: the resolver's watch is at the current revision.
    await putInstance(direct, ns, 'c', { version: '1.0.1' })
    await waitForResolver(
      started,
      'c updated',
      () => resolver.endpoints.find((e) => e.id === 'c')?.record.version === '1.0.1',
    )

    proxy.cut()
    await waitForResolver(started, 'stale after the cut', () => resolver.stale)
    expect(resolver.lastError).toBeDefined()

    // While cut off: one instance goes, two come, lots of unrelated traffic, then compaction.
    await deleteInstance(direct, ns, 'a')
    await putInstance(direct, ns, 'd')
    await putInstance(direct, ns, 'e')
    const otherNs = uniqueNamespace('compaction-noise')
    for (let i = 0; i < 300; i++) {
      await direct.put(instanceKey(otherNs, ROLE, `n${i % 10}`)).value(`noise ${i}`)
    }
    const revision = (await direct.get(instanceKey(ns, ROLE, 'b')).exec()).header.revision
    await direct.kv.compact({ revision, physical: true })
    await direct.maintenance.defragment()
    // The history the resolver would resume from is gone.
    await expect(
      direct.kv.range({ key: Buffer.from(instanceKey(ns, ROLE, 'b')), revision: 2 }),
    ).rejects.toThrow(/compacted/)

    // Give the resolver time to retry (and fail) a few times: it must keep what it knew.
    await new Promise((resolve) => setTimeout(resolve, 2_500))
    expect(resolver.stale).toBe(true)
    expect(ids(resolver)).toEqual(['a', 'b', 'c'])
    expect(resolver.listed).toBe(true)

    const restoredAt = Date.now()
    proxy.restore()
    await waitForResolver(
      started,
      'the live set after restore',
      () => sameIds(resolver, ['b', 'c', 'd', 'e']) && !resolver.stale,
    )
    const caughtUpMs = Date.now() - restoredAt
    expect(ids(resolver)).toEqual(['b', 'c', 'd', 'e'])

    // The watch works again afterwards.
    await putInstance(direct, ns, 'f')
    await deleteInstance(direct, ns, 'b')
    await waitForResolver(started, 'f added and b removed', () =>
      sameIds(resolver, ['c', 'd', 'e', 'f']),
    )
    expect(resolver.stale).toBe(false)
    console.info(`resolver caught up ${caughtUpMs} ms after the proxy was restored`)
  })

  it('notices an etcd that was wiped and restarted, and tracks the new store', async () => {
    const etcd = await startEtcd()
    let direct = reconnect(etcd)
    const ns = uniqueNamespace('wiped')
    await putInstance(direct, ns, 'old-1')
    await putInstance(direct, ns, 'old-2')
    // Push the old store's revision well past where the new one will be.
    for (let i = 0; i < 100; i++) await putInstance(direct, ns, 'old-2', { pid: i })

    const started = startResolver(etcd.endpoint, ns, cleanups)
    const { resolver } = started
    await resolver.whenListed(CATCH_UP_MS)
    expect(ids(resolver)).toEqual(['old-1', 'old-2'])

    await etcd.wipe()
    await waitForResolver(started, 'stale while etcd is down', () => resolver.stale)
    expect(ids(resolver)).toEqual(['old-1', 'old-2'])

    await etcd.start()
    const restartedAt = Date.now()
    direct = reconnect(etcd)
    await putInstance(direct, ns, 'new-1')
    expect(
      BigInt((await direct.get(instanceKey(ns, ROLE, 'new-1')).exec()).header.revision),
    ).toBeLessThan(100n)
    // The new store is listed, but instances missing from it are kept for a grace period: live
    // ones are re-registering right now (old-1 does, below); old-2 never does and goes after it.
    await waitForResolver(
      started,
      'new-1 listed from the new store',
      () => sameIds(resolver, ['new-1', 'old-1', 'old-2']) && !resolver.stale,
    )
    const caughtUpMs = Date.now() - restartedAt
    await putInstance(direct, ns, 'old-1')
    await waitForResolver(
      started,
      'old-2 dropped after the grace period, old-1 kept (it registered again)',
      () => sameIds(resolver, ['new-1', 'old-1']),
    )
    expect(Date.now() - restartedAt).toBeGreaterThanOrEqual(NEW_STORE_GRACE_MS - 500)
    await deleteInstance(direct, ns, 'old-1')
    await waitForResolver(started, 'only new-1', () => sameIds(resolver, ['new-1']))

    // Changes after that are tracked (the watch is on the new store's revisions).
    await putInstance(direct, ns, 'new-2')
    await waitForResolver(started, 'new-2 added', () => sameIds(resolver, ['new-1', 'new-2']))
    await deleteInstance(direct, ns, 'new-1')
    await waitForResolver(started, 'new-1 removed', () => sameIds(resolver, ['new-2']))
    expect(resolver.stale).toBe(false)
    console.info(`resolver caught up ${caughtUpMs} ms after the wiped etcd restarted`)
  })

  it('keeps the last known set while etcd is stopped, and tracks changes once it is back', async () => {
    const etcd = await startEtcd()
    let direct = reconnect(etcd)
    const ns = uniqueNamespace('stopped')
    await putInstance(direct, ns, 'a')
    await putInstance(direct, ns, 'b')

    const started = startResolver(etcd.endpoint, ns, cleanups)
    const { resolver, updates } = started
    await resolver.whenListed(CATCH_UP_MS)
    expect(ids(resolver)).toEqual(['a', 'b'])

    await etcd.stop()
    await waitForResolver(started, 'stale while etcd is stopped', () => resolver.stale)
    // Retries fail for a while; the set stays.
    await new Promise((resolve) => setTimeout(resolve, 2_500))
    expect(resolver.stale).toBe(true)
    expect(resolver.lastError).toBeDefined()
    expect(ids(resolver)).toEqual(['a', 'b'])
    expect(updates.filter((u) => u.op === 'remove')).toEqual([])

    await etcd.start()
    const restartedAt = Date.now()
    direct = reconnect(etcd)
    await waitForResolver(started, 'not stale after the restart', () => !resolver.stale)
    const freshMs = Date.now() - restartedAt
    expect(ids(resolver)).toEqual(['a', 'b'])

    await putInstance(direct, ns, 'c')
    await deleteInstance(direct, ns, 'a')
    await waitForResolver(started, 'c added and a removed', () => sameIds(resolver, ['b', 'c']))
    await putInstance(direct, ns, 'b', { version: '3.0.0' })
    await waitForResolver(
      started,
      'b updated',
      () => resolver.endpoints.find((e) => e.id === 'b')?.record.version === '3.0.0',
    )
    expect(resolver.stale).toBe(false)
    console.info(`resolver fresh again ${freshMs} ms after etcd restarted`)
  })
  it('notices that it reaches another cluster (other cluster id, revision ahead): lists it, keeps the instances missing from it for the grace period, then drops them', async () => {
    const a = await startEtcd()
    const b = await EtcdServer.start()
    const directA = reconnect(a)
    const directB = directClient(b.endpoint)
    cleanups.push(async () => {
      directB.close()
      await b.dispose()
    })
    const ns = uniqueNamespace('other-cluster')
    await putInstance(directA, ns, 'a-1')
    // B's revision well past A's: only the cluster id tells the two stores apart.
    for (let i = 0; i < 100; i++) await putInstance(directB, ns, 'b-1', { pid: i })
    const headerOf = async (client: Etcd3) =>
      (await client.get(instanceKey(ns, ROLE, 'none')).exec()).header as unknown as {
        revision: string
        cluster_id: string
      }
    const [headerA, headerB] = [await headerOf(directA), await headerOf(directB)]
    expect(headerB.cluster_id).not.toBe(headerA.cluster_id)
    expect(BigInt(headerB.revision)).toBeGreaterThan(BigInt(headerA.revision) + 50n)

    const proxy = await TcpProxy.start(a.clientPort)
    cleanups.push(() => proxy.close())
    const started = startResolver(proxy.url, ns, cleanups)
    const { resolver } = started
    const timeline: { op: string; id: string; at: number }[] = []
    resolver.subscribe(({ op, endpoint }) => timeline.push({ op, id: endpoint.id, at: Date.now() }))
    await resolver.whenListed(CATCH_UP_MS)
    expect(ids(resolver)).toEqual(['a-1'])

    // The same address now leads to another cluster (etcd replaced behind a name).
    proxy.cut()
    proxy.retarget(b.clientPort)
    proxy.restore()
    await waitForResolver(started, 'b-1 listed from the other cluster', () =>
      ids(resolver).includes('b-1'),
    )
    // Listed, but a-1 is kept for now: it may be registering in the new store right now.
    expect(ids(resolver)).toEqual(['a-1', 'b-1'])
    await waitForResolver(
      started,
      'a-1 dropped after the grace period',
      () => sameIds(resolver, ['b-1']),
      NEW_STORE_GRACE_MS + CATCH_UP_MS,
    )
    const added = timeline.find((event) => event.op === 'add' && event.id === 'b-1')!
    const removed = timeline.find((event) => event.op === 'remove' && event.id === 'a-1')!
    // Timers do not fire early: the removal waited the grace period after the listing.
    expect(removed.at - added.at).toBeGreaterThanOrEqual(NEW_STORE_GRACE_MS - 100)
    expect(started.logLines.some((line) => line.includes("etcd's store is new"))).toBe(true)
    // And it follows the new cluster from there.
    await putInstance(directB, ns, 'b-2')
    await waitForResolver(started, 'b-2 added', () => sameIds(resolver, ['b-1', 'b-2']))
    expect(resolver.stale).toBe(false)
  })
})
