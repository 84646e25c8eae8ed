import type { Etcd3 } from 'etcd3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { instanceKey } from '../../framework/registry/record.js'
import {
  CATCH_UP_MS,
  deleteInstance,
  directClient,
  ids,
  putInstance,
  ROLE,
  recordObject,
  sameIds,
  startResolver,
  uniqueNamespace,
  useCleanups,
  validRecord,
  waitForResolver,
} from '../support/resolver-harness.js'

// EtcdResolver against a real etcd that stays up: listing, watching, filtering, malformed records.
// Faults (etcd cut off, stopped, wiped, compacted) are in test/reliability/resolver.test.ts.

const cleanups = useCleanups()

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

    const started = startResolver(etcd.endpoint, ns, cleanups)
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

    const started = startResolver(etcd.endpoint, ns, cleanups)
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

    const started = startResolver(etcd.endpoint, ns, cleanups)
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
})
