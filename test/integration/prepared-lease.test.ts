import { Writable } from 'node:stream'
import type { Etcd3 } from 'etcd3'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { createEtcdClient } from '../../framework/registry/etcd-client.js'
import { instanceKey } from '../../framework/registry/record.js'
import { Registration } from '../../framework/registry/registration.js'
import relay from '../fixtures/app/services/relay/index.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { startInProcess } from '../support/in-process.js'
import { sampleRecord } from '../support/phone-book.js'
import { waitFor } from '../support/wait.js'

// A registration whose lease is granted ahead of start() (prepare(), as the runtime does while
// its server boots): start() then costs one etcd write, a lease that went meanwhile is replaced,
// and stop() revokes a lease that never carried a record.

const TTL = 2
const fixture = useEtcd('prepared', TTL)
const clients: Etcd3[] = []
const registrations: Registration[] = []

afterEach(async () => {
  for (const registration of registrations.splice(0)) await registration.stop()
  for (const client of clients.splice(0)) client.close()
})

/** A Registration on its own etcd client, and the messages it logs (debug and up). */
function newRegistration(ttlSeconds = TTL) {
  const client = createEtcdClient([fixture.etcd.endpoint])
  clients.push(client)
  const messages: string[] = []
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) {
          messages.push((JSON.parse(line) as { msg: string }).msg)
        }
        done()
      },
    }),
  )
  const namespace = fixture.namespace()
  const id = `cache-${registrations.length}`
  const key = instanceKey(namespace, 'cache', id)
  const registration = new Registration({
    client,
    endpoints: [fixture.etcd.endpoint],
    key,
    ttlSeconds,
    loadRefreshMs: 60_000,
    record: () => sampleRecord('cache', id, 'http://127.0.0.1:1', { get: 'query' }),
    log,
  })
  registrations.push(registration)
  return { registration, key, messages }
}

/** Every lease etcd holds now (decimal ids), read by the test's own client. */
async function leases(): Promise<Set<string>> {
  const response = await fixture.probe.client.leaseClient.leaseLeases()
  return new Set(response.leases.map((lease) => lease.ID))
}

/** The one lease in `after` that is not in `before`. */
function newLease(before: Set<string>, after: Set<string>): string {
  const added = [...after].filter((id) => !before.has(id))
  expect(added).toHaveLength(1)
  return added[0]!
}

async function revision(): Promise<bigint> {
  const response = await fixture.probe.client.kv.range({ key: Buffer.from('/prepared-rev') })
  return BigInt(response.header.revision)
}

function registered(registration: Registration): Promise<void> {
  return new Promise((resolve) => registration.once('registered', resolve))
}

describe('a lease granted ahead of start()', () => {
  it('prepare() grants the lease; start() then makes the record visible with exactly one write, on that lease', async () => {
    const { registration, key } = newRegistration()
    const before = await leases()
    await registration.prepare()
    const prepared = newLease(before, await leases())
    // The grant wrote no key: the store's revision moves only with start()'s put.
    const revisionAtStart = await revision()
    expect(await fixture.probe.has(key)).toBe(false)

    const done = registered(registration)
    registration.start()
    await done

    const kv = (await fixture.probe.client.kv.range({ key: Buffer.from(key) })).kvs[0]
    expect(kv?.lease).toBe(prepared)
    expect(BigInt(kv!.create_revision)).toBe(revisionAtStart + 1n)
    // Exactly one write since start(), and no second lease granted.
    expect(await revision()).toBe(revisionAtStart + 1n)
    expect(await leases()).toEqual(new Set([...before, prepared]))
    expect(registration.leaseId).toBe(BigInt(prepared).toString(16))
  })

  it('revoked behind its back before start(): the put is refused, a new lease is granted, and the record appears and stays', async () => {
    // A long TTL: keepalives (every TTL/3) do not notice the revoke before start(), so it is the
    // put on the revoked lease that finds out.
    const { registration, key, messages } = newRegistration(6)
    const before = await leases()
    await registration.prepare()
    const prepared = newLease(before, await leases())
    await fixture.probe.client.leaseClient.leaseRevoke({ ID: prepared })
    expect(await leases()).not.toContain(prepared)

    const lost: string[] = []
    registration.on('unregistered', (reason: string) => lost.push(reason))
    const done = registered(registration)
    registration.start()
    await done

    expect(messages).toContain('the lease granted ahead of start is gone; granting a new one')
    // Replaced within the first attempt: no failed attempt, no backoff.
    expect(messages.filter((message) => message.startsWith('cannot register'))).toEqual([])
    const first = await fixture.probe.lease(key)
    expect(first.id).not.toBe(prepared)
    expect(first.ttl).toBeGreaterThan(0)
    // It stays: through two of the fixture's TTLs of keepalives, the same key on the same live lease.
    const until = Date.now() + 2 * TTL * 1000
    while (Date.now() < until) {
      const now = await fixture.probe.lease(key)
      expect(now.id).toBe(first.id)
      expect(now.ttl).toBeGreaterThan(0)
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    expect(registration.registered).toBe(true)
    expect(lost).toEqual([])
  })

  it('revoked and noticed by its keepalive before start(): start() grants a new one at once', async () => {
    const { registration, key, messages } = newRegistration()
    const before = await leases()
    await registration.prepare()
    const prepared = newLease(before, await leases())
    await fixture.probe.client.leaseClient.leaseRevoke({ ID: prepared })
    // The next keepalive (within TTL/3) is answered "no such lease".
    await waitFor('the keepalive to find the lease gone', () =>
      messages.includes('lease lost before the record was registered on it; a new one is granted'),
    )
    const done = registered(registration)
    registration.start()
    await done
    expect(messages).toContain(
      'the lease granted ahead of start is no longer alive; granting a new one',
    )
    const lease = await fixture.probe.lease(key)
    expect(lease.id).not.toBe(prepared)
    expect(lease.ttl).toBeGreaterThan(0)
  })

  it('stop() after prepare() without start(): the lease is revoked, and no record was ever put', async () => {
    const { registration, key } = newRegistration()
    const before = await leases()
    await registration.prepare()
    const prepared = newLease(before, await leases())
    const revisionAtPrepare = await revision()
    await registration.stop()
    expect(await leases()).not.toContain(prepared)
    expect(await fixture.probe.has(key)).toBe(false)
    expect(await revision()).toBe(revisionAtPrepare)
  })

  it('a boot that fails after the grant (a dependency never came) revokes the lease it granted ahead', async () => {
    const before = await leases()
    // relay waits for a `slow` instance, and none is started.
    const definition = { ...relay, waitForDeps: { timeoutMs: 1_500 } }
    await expect(
      startInProcess(definition, fixture.etcd.endpoint, fixture.namespace()),
    ).rejects.toThrow(/slow/)
    // Every lease the boot granted is gone at once, not a TTL later.
    expect(await leases()).toEqual(before)
  })
})

describe('the lease granted ahead is ready before start()', () => {
  it("prepare() resolves once the lease's first keepalive is answered, so the put goes out alone", async () => {
    const { registration } = newRegistration()
    // The registration's own client, its lease() wrapped to see the lease's keepalive answers.
    const client = clients.at(-1)!
    const lease = client.lease.bind(client)
    const answered: number[] = []
    client.lease = ((...args: Parameters<Etcd3['lease']>) => {
      const made = lease(...args)
      made.on('keepaliveSucceeded', () => answered.push(performance.now()))
      return made
    }) as Etcd3['lease']
    await registration.prepare()
    const prepared = performance.now()
    expect(answered.length).toBeGreaterThanOrEqual(1)
    expect(answered[0]!).toBeLessThanOrEqual(prepared)
    const done = registered(registration)
    registration.start()
    await done
    expect(registration.registered).toBe(true)
  })
})

describe('the own-key watch is made with the lease, before the put', () => {
  it('start() makes no watch: between ready and visible there is only the put', async () => {
    const { registration } = newRegistration()
    const client = clients.at(-1)!
    const watch = client.watch.bind(client)
    let watches = 0
    client.watch = () => {
      watches++
      return watch()
    }
    await registration.prepare()
    expect(watches).toBe(1)
    const done = registered(registration)
    registration.start()
    await done
    expect(watches).toBe(1)
  })

  it('a delete before its put (a leftover record) is no loss, even when its event comes after the put; a delete after it is', async () => {
    const { registration, key, messages } = newRegistration()
    // The registration's own watches, their delete events held back until released: etcd may
    // deliver the event of a delete made just before the put after the put's answer.
    const client = clients.at(-1)!
    const watch = client.watch.bind(client)
    const held: (() => void)[] = []
    let holding = true
    client.watch = () => {
      const builder = watch()
      const made = builder.watcher.bind(builder)
      builder.watcher = () => {
        const watcher = made()
        const emit = watcher.emit.bind(watcher)
        watcher.emit = (event: string | symbol, ...args: unknown[]) => {
          if (event !== 'delete' || !holding) return emit(event, ...args)
          held.push(() => emit(event, ...args))
          return true
        }
        return watcher
      }
      return builder
    }
    await registration.prepare()
    // A leftover record at the key (an older lease's), deleted after the watch began and before
    // the put.
    const probe = fixture.probe.client
    await probe.put(key).value('{"left":"over"}')
    await probe.delete().key(key)
    await waitFor('the watch to receive the delete', () => held.length === 1)
    const lost: string[] = []
    registration.on('unregistered', (reason: string) => lost.push(reason))
    const done = registered(registration)
    registration.start()
    await done
    const first = await fixture.probe.lease(key)
    // Now the held event arrives, after the put's answer: it is about a revision before the put.
    holding = false
    for (const deliver of held.splice(0)) deliver()
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(lost).toEqual([])
    expect(registration.registered).toBe(true)
    expect((await fixture.probe.lease(key)).id).toBe(first.id)

    // A delete after the put is a loss: registered again on a new lease.
    const again = registered(registration)
    await probe.delete().key(key)
    await again
    expect(lost).toEqual(['own key was deleted'])
    expect(messages).toContain('registration lost; registering again')
    const second = await fixture.probe.lease(key)
    expect(second.id).not.toBe(first.id)

    // That re-registration had no prepare(): it put, then watched from the next revision. A
    // delete is a loss there too.
    const third = registered(registration)
    await probe.delete().key(key)
    await third
    expect(lost).toEqual(['own key was deleted', 'own key was deleted'])
    expect((await fixture.probe.lease(key)).id).not.toBe(second.id)
  })
})
