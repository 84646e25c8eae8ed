import { Etcd3 } from 'etcd3'
import { pino } from 'pino'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { EtcdResolver, NEW_STORE_GRACE_MS } from '../../framework/discovery/etcd-resolver.js'
import { createEtcdClient } from '../../framework/registry/etcd-client.js'
import { instanceKey, parseRecord, RECORD_VERSION } from '../../framework/registry/record.js'
import { TcpProxy } from '../support/tcp-proxy.js'
import { waitFor } from '../support/wait.js'

// EtcdResolver against a real etcd, no mocks. The test writes phone book records with its own etcd3
// client, straight to etcd; the resolver's client may go through a TcpProxy, so cutting the proxy
// disconnects the resolver alone.

const ROLE = 'cache'
/** Bound on every wait for the resolver to catch up. */
const CATCH_UP_MS = 10_000

let namespaces = 0
function uniqueNamespace(label: string): string {
  return `resolver-test-${label}-${process.pid}-${++namespaces}`
}

function recordObject(id: string, role = ROLE, overrides: Record<string, unknown> = {}) {
  return {
    v: RECORD_VERSION,
    role,
    id,
    url: `http://127.0.0.1:1/${id}`,
    version: '1.0.0',
    contract: 'test-contract',
    procedures: { get: 'query', set: 'mutation' },
    load: { inflight: 0, eventLoopDelayMs: 0, cpu: 0, rss: 0 },
    startedAt: new Date().toISOString(),
    host: '127.0.0.1',
    pid: process.pid,
    ...overrides,
  }
}

/** A valid record for `id`, checked against the schema so a broken fixture fails loudly. */
function validRecord(
  namespace: string,
  id: string,
  role = ROLE,
  overrides: Record<string, unknown> = {},
): string {
  const raw = JSON.stringify(recordObject(id, role, overrides))
  const parsed = parseRecord(instanceKey(namespace, role, id), raw)
  if (!parsed.ok) throw new Error(`test fixture is not a valid record: ${parsed.reason}`)
  return raw
}

async function putInstance(
  client: Etcd3,
  namespace: string,
  id: string,
  overrides: Record<string, unknown> = {},
): Promise<void> {
  await client
    .put(instanceKey(namespace, ROLE, id))
    .value(validRecord(namespace, id, ROLE, overrides))
}

async function deleteInstance(client: Etcd3, namespace: string, id: string): Promise<void> {
  await client.delete().key(instanceKey(namespace, ROLE, id))
}

/** The test's own client, straight to etcd. */
function directClient(endpoint: string): Etcd3 {
  return new Etcd3({
    hosts: [endpoint],
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + 5_000 }),
  })
}

interface Seen {
  op: 'add' | 'update' | 'remove'
  id: string
  version: string
}

interface Started {
  resolver: EtcdResolver
  /** Every update, with the record's id and version at the time it was emitted. */
  updates: Seen[]
  /** The resolver's log lines (JSON), for failure messages. */
  logLines: string[]
}

/** Things to stop after each test, last first. */
const cleanups: (() => Promise<void> | void)[] = []

afterEach(async () => {
  const errors: unknown[] = []
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      await cleanup()
    } catch (err) {
      errors.push(err)
    }
  }
  if (errors.length > 0) throw new AggregateError(errors, 'cleanup failed')
})

/** Rejects if `promise` takes longer than `ms`: a hang in cleanup is a finding, not a hook timeout. */
async function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

function startResolver(endpoint: string, namespace: string): Started {
  const logLines: string[] = []
  const log = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) })
  const client = createEtcdClient([endpoint])
  const resolver = new EtcdResolver(client, ROLE, namespace, log)
  const updates: Seen[] = []
  resolver.subscribe(({ op, endpoint }) =>
    updates.push({ op, id: endpoint.id, version: endpoint.record.version }),
  )
  cleanups.push(async () => {
    await bounded(resolver.close(), 5_000, 'resolver.close()')
    client.close()
  })
  return { resolver, updates, logLines }
}

function ids(resolver: EtcdResolver): string[] {
  return resolver.endpoints.map((endpoint) => endpoint.id).sort()
}

/** waitFor, with the resolver's state and log in the failure message. */
async function waitForResolver(
  started: Started,
  what: string,
  check: () => boolean,
  timeoutMs = CATCH_UP_MS,
): Promise<number> {
  try {
    return await waitFor(what, check, timeoutMs)
  } catch (err) {
    const { resolver } = started
    throw new Error(
      `${(err as Error).message}; resolver: endpoints=[${ids(resolver).join(',')}] stale=${resolver.stale} ` +
        `listed=${resolver.listed} lastError=${resolver.lastError}\nlog:\n${started.logLines.join('')}`,
    )
  }
}

function sameIds(resolver: EtcdResolver, expected: string[]): boolean {
  const actual = ids(resolver)
  return (
    actual.length === expected.length && actual.every((id, i) => id === [...expected].sort()[i])
  )
}

describe('EtcdResolver against a shared etcd', () => {
  let etcd: EtcdServer
  let client: Etcd3

  beforeAll(async () => {
    etcd = await EtcdServer.start()
    client = directClient(etcd.endpoint)
  })

  afterAll(async () => {
    client?.close()
    await etcd?.dispose()
  })

  it('lists the instances already there, then applies puts and deletes as they happen', async () => {
    const ns = uniqueNamespace('list-watch')
    await putInstance(client, ns, 'a')
    await putInstance(client, ns, 'b')

    const started = startResolver(etcd.endpoint, ns)
    const { resolver, updates } = started
    expect(resolver.role).toBe(ROLE)
    expect(resolver.listed).toBe(false)
    expect(resolver.stale).toBe(true)
    await resolver.whenListed(CATCH_UP_MS)
    expect(resolver.listed).toBe(true)
    expect(resolver.stale).toBe(false)
    expect(resolver.lastError).toBeUndefined()
    expect(ids(resolver)).toEqual(['a', 'b'])
    expect(resolver.endpoints.find((e) => e.id === 'a')?.url).toBe('http://127.0.0.1:1/a')
    expect(updates).toEqual([
      { op: 'add', id: 'a', version: '1.0.0' },
      { op: 'add', id: 'b', version: '1.0.0' },
    ])
    // Once listed, whenListed resolves at once.
    await resolver.whenListed(1)
    updates.length = 0

    const listedSnapshot = resolver.endpoints
    const endpointA = resolver.endpoints.find((e) => e.id === 'a')

    await putInstance(client, ns, 'c')
    await waitForResolver(started, 'c added', () => ids(resolver).includes('c'))
    // The snapshot handed out earlier is not mutated in place.
    expect(listedSnapshot.map((e) => e.id).sort()).toEqual(['a', 'b'])

    await putInstance(client, ns, 'a', { version: '2.0.0', url: 'http://127.0.0.1:2/' })
    await waitForResolver(
      started,
      'a updated',
      () => resolver.endpoints.find((e) => e.id === 'a')?.record.version === '2.0.0',
    )
    // An update keeps the Endpoint (and what the caller measured about it), with the new record.
    const updatedA = resolver.endpoints.find((e) => e.id === 'a')
    expect(updatedA).toBe(endpointA)
    expect(updatedA?.url).toBe('http://127.0.0.1:2/')

    await deleteInstance(client, ns, 'b')
    await waitForResolver(started, 'b removed', () => !ids(resolver).includes('b'))

    expect(ids(resolver)).toEqual(['a', 'c'])
    expect(updates).toEqual([
      { op: 'add', id: 'c', version: '1.0.0' },
      { op: 'update', id: 'a', version: '2.0.0' },
      { op: 'remove', id: 'b', version: '1.0.0' },
    ])
    expect(resolver.stale).toBe(false)

    // An unsubscribed listener hears nothing more.
    const late: string[] = []
    const unsubscribe = resolver.subscribe((u) => late.push(`${u.op} ${u.endpoint.id}`))
    unsubscribe()
    await deleteInstance(client, ns, 'c')
    await waitForResolver(started, 'c removed', () => !ids(resolver).includes('c'))
    expect(late).toEqual([])
    expect(ids(resolver)).toEqual(['a'])
  })

  it('ignores keys of other roles and other namespaces, listed or watched', async () => {
    const ns = uniqueNamespace('only-role')
    // Neighbours whose keys share text with the watched prefix `/<ns>/services/cache/`.
    const strangers = (suffix: string): [string, string][] => [
      // A role whose name starts with this role's name.
      [instanceKey(ns, 'cache-2', `x${suffix}`), validRecord(ns, `x${suffix}`, 'cache-2')],
      // Another role of the namespace.
      [instanceKey(ns, 'api', `y${suffix}`), validRecord(ns, `y${suffix}`, 'api')],
      // The same role in a namespace whose name starts with this namespace's name.
      [
        instanceKey(`${ns}-other`, ROLE, `z${suffix}`),
        validRecord(`${ns}-other`, `z${suffix}`, ROLE),
      ],
      // The same role in another namespace.
      [
        instanceKey(`other-${ns}`, ROLE, `w${suffix}`),
        validRecord(`other-${ns}`, `w${suffix}`, ROLE),
      ],
      // Not under services/ at all.
      [`/${ns}/config/${ROLE}/v${suffix}`, validRecord(ns, `v${suffix}`)],
    ]
    for (const [key, value] of strangers('1')) await client.put(key).value(value)
    await putInstance(client, ns, 'mine-1')

    const started = startResolver(etcd.endpoint, ns)
    const { resolver, updates } = started
    await resolver.whenListed(CATCH_UP_MS)
    expect(ids(resolver)).toEqual(['mine-1'])

    for (const [key, value] of strangers('2')) await client.put(key).value(value)
    for (const [key] of strangers('1')) await client.delete().key(key)
    // The strangers went first, so once mine-2 is seen the resolver has had the chance to see them.
    await putInstance(client, ns, 'mine-2')
    await waitForResolver(started, 'mine-2 added', () => ids(resolver).includes('mine-2'))

    expect(ids(resolver)).toEqual(['mine-1', 'mine-2'])
    expect(updates.map((u) => `${u.op} ${u.id}`)).toEqual(['add mine-1', 'add mine-2'])
  })

  it('skips malformed records, keeps valid ones beside them, and drops a record that turns malformed', async () => {
    const ns = uniqueNamespace('malformed')
    const key = (id: string) => instanceKey(ns, ROLE, id)
    const withoutUrl = (id: string) => {
      const { url: _url, ...rest } = recordObject(id)
      return JSON.stringify(rest)
    }
    const malformed: Record<string, string> = {
      'not-json': '{"v": 1, "role": "cache", ',
      'version-2': JSON.stringify(recordObject('version-2', ROLE, { v: 2 })),
      'no-url': withoutUrl('no-url'),
      // A valid record of role 'api' filed under this role's prefix.
      'wrong-role': JSON.stringify(recordObject('wrong-role', 'api')),
      // A valid record whose id is not the key's.
      'wrong-id': JSON.stringify(recordObject('someone-else')),
    }
    for (const [id, value] of Object.entries(malformed)) await client.put(key(id)).value(value)
    await putInstance(client, ns, 'good-1')

    const started = startResolver(etcd.endpoint, ns)
    const { resolver, updates } = started
    await resolver.whenListed(CATCH_UP_MS)
    expect(ids(resolver)).toEqual(['good-1'])
    expect(resolver.stale).toBe(false)
    // Each malformed record is warned about (by key).
    for (const id of Object.keys(malformed)) {
      expect(started.logLines.some((line) => line.includes(`"key":"${key(id)}"`))).toBe(true)
    }

    // Malformed records arriving through the watch are skipped too.
    await client.put(key('late-not-json')).value('nope')
    await client
      .put(key('late-version-2'))
      .value(JSON.stringify(recordObject('late-version-2', ROLE, { v: 2 })))
    await client.put(key('late-no-url')).value(withoutUrl('late-no-url'))
    await client
      .put(key('late-wrong-role'))
      .value(JSON.stringify(recordObject('late-wrong-role', 'api')))
    await putInstance(client, ns, 'good-2')
    await waitForResolver(started, 'good-2 added', () => ids(resolver).includes('good-2'))
    expect(ids(resolver)).toEqual(['good-1', 'good-2'])

    // A valid instance whose record a later put breaks is dropped...
    await client.put(key('good-1')).value(JSON.stringify(recordObject('good-1', ROLE, { v: 2 })))
    await waitForResolver(started, 'good-1 dropped', () => !ids(resolver).includes('good-1'))
    expect(ids(resolver)).toEqual(['good-2'])
    await client.put(key('good-2')).value('{broken')
    await waitForResolver(started, 'good-2 dropped', () => !ids(resolver).includes('good-2'))
    expect(ids(resolver)).toEqual([])

    // ...and comes back once its record is valid again; so does a key that was malformed from the start.
    await putInstance(client, ns, 'good-1')
    await putInstance(client, ns, 'no-url')
    await waitForResolver(started, 'good-1 and no-url back', () =>
      sameIds(resolver, ['good-1', 'no-url']),
    )

    expect(updates.map((u) => `${u.op} ${u.id}`)).toEqual([
      'add good-1',
      'add good-2',
      'remove good-1',
      'remove good-2',
      'add good-1',
      'add no-url',
    ])
    expect(resolver.stale).toBe(false)
  })

  it('waits for a first listing while etcd is unreachable, and lists once it is reachable', async () => {
    const ns = uniqueNamespace('first-list')
    await putInstance(client, ns, 'a')
    const proxy = await TcpProxy.start(etcd.clientPort)
    cleanups.push(() => proxy.close())
    proxy.cut()

    const started = startResolver(proxy.url, ns)
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
})

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

  it('keeps the last known set while cut off, then relists past a compaction', async () => {
    const etcd = await startEtcd()
    const direct = reconnect(etcd)
    const ns = uniqueNamespace('compaction')
    for (const id of ['a', 'b', 'c']) await putInstance(direct, ns, id)

    const proxy = await TcpProxy.start(etcd.clientPort)
    cleanups.push(() => proxy.close())
    const started = startResolver(proxy.url, ns)
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

    const started = startResolver(etcd.endpoint, ns)
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

    const started = startResolver(etcd.endpoint, ns)
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
})
