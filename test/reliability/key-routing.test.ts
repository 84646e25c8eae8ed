import { request } from 'undici'
import { describe, expect, it } from 'vitest'
import { rolePrefix } from '../../framework/registry/record.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { faultRow } from '../support/fault-summary.js'
import { type Started, startRegistered } from '../support/spawned-app.js'
import { waitFor } from '../support/wait.js'

// The example app routes its cache calls by key (services/api: `balancer: { hash }`): a key's
// reads go where its writes went, so every read after a write is a hit, and a cache that dies
// costs only the keys it held.
const fixture = useEtcd('key-routing', 2)
const KEYS = Array.from({ length: 100 }, (_, i) => `user:${i}`)

const start = (role: string, namespace: string): Promise<Started> =>
  startRegistered((name, ns) => fixture.spawn(name, ns), role, namespace)

/** Calls made through `api()` and of those answered without an error. */
const counts = { calls: 0, answered: 0 }

/** Calls `api.<path>` over tRPC's HTTP protocol, as any client would; fails on an error answer. */
async function api<T>(apiUrl: string, path: string, input: unknown): Promise<T> {
  counts.calls++
  const json = JSON.stringify(input)
  const response =
    path === 'put'
      ? await request(`${apiUrl}/trpc/${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: json,
        })
      : await request(`${apiUrl}/trpc/${path}?input=${encodeURIComponent(json)}`)
  const body = (await response.body.json()) as { result?: { data: T }; error?: unknown }
  if (response.statusCode !== 200 || !body.result) {
    throw new Error(`api.${path} answered ${response.statusCode}: ${JSON.stringify(body.error)}`)
  }
  counts.answered++
  return body.result.data
}

type Put = { ok: true; servedBy: string }
type Got = { value: string | null; hit: boolean; servedBy: string }

describe('routing by key through the example app (real etcd, real processes)', () => {
  it('100 keys put then read through api across 3 caches: every read a hit; kill -9 of one cache: only its keys miss', async () => {
    const row = faultRow('kill -9 of one of 3 caches, cache calls routed by key (hash balancer)')
    const namespace = fixture.namespace()
    const caches = await Promise.all([0, 1, 2].map(() => start('cache', namespace)))
    const apiInstance = await start('api', namespace)

    const owner = new Map<string, string>()
    for (const key of KEYS) {
      const put = await api<Put>(apiInstance.url, 'put', { key, value: `v-${key}` })
      owner.set(key, put.servedBy)
    }
    for (const key of KEYS) {
      const got = await api<Got>(apiInstance.url, 'get', { key })
      expect(got, key).toEqual({ value: `v-${key}`, hit: true, servedBy: owner.get(key) })
    }
    const held = (id: string) => KEYS.filter((key) => owner.get(key) === id)
    // Every cache holds some keys (HRW spreads 100 keys over 3: ~33 each).
    for (const cache of caches) expect(held(cache.id).length).toBeGreaterThan(15)

    // kill -9 the cache holding the most keys.
    const victim = caches.reduce((a, b) => (held(a.id).length >= held(b.id).length ? a : b))
    await victim.instance.kill('SIGKILL')

    // Read every key again at once: the victim's record may still be in the phone book (TTL 2 s),
    // so its keys' reads meet a refused connection and go to the next instance in the key's order.
    const missed: string[] = []
    for (const key of KEYS) {
      const got = await api<Got>(apiInstance.url, 'get', { key })
      if (owner.get(key) === victim.id) {
        expect(got.hit, key).toBe(false)
        expect(got.servedBy).not.toBe(victim.id)
        missed.push(key)
      } else {
        expect(got, key).toEqual({ value: `v-${key}`, hit: true, servedBy: owner.get(key) })
      }
    }
    expect(missed).toEqual(held(victim.id))

    // Written again, a lost key is a hit from then on, on its new owner.
    for (const key of missed) await api<Put>(apiInstance.url, 'put', { key, value: `v2-${key}` })
    for (const key of missed) {
      const got = await api<Got>(apiInstance.url, 'get', { key })
      expect(got.hit, key).toBe(true)
      expect(got.value).toBe(`v2-${key}`)
    }
    // The phone book lost it too: its record expires (TTL 2 s) while the others stay.
    const recordsLeft = () =>
      fixture.probe.client.getAll().prefix(rolePrefix(namespace, 'cache')).keys()
    await waitFor('the killed cache to leave the phone book', async () =>
      (await recordsLeft()).every((key) => !key.endsWith(victim.id)),
    )
    const cachesLeft = (await recordsLeft()).length
    row.measured({
      calls: counts.calls,
      failed: counts.calls - counts.answered,
      lost: caches.length - cachesLeft,
      instances: caches.length,
      note: `100 keys; before the kill 100/100 reads hit; after it ${KEYS.length - missed.length}/100 hit and ${missed.length} missed, exactly the keys the killed cache held; written again, they hit on their next instance`,
    })
    expect(cachesLeft).toBe(caches.length - 1)
    row.passed()
  })
})
