import { execFileSync, spawnSync } from 'node:child_process'
import { Etcd3 } from 'etcd3'
import { pino } from 'pino'
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { EtcdResolver } from '../../framework/discovery/etcd-resolver.js'
import { createEtcdClient } from '../../framework/registry/etcd-client.js'
import { instanceKey } from '../../framework/registry/record.js'
import { sampleRecord } from '../support/phone-book.js'
import { waitFor } from '../support/wait.js'

// A watch that etcd cancels (here: its start revision was compacted between the resolver's listing
// and its watch request) must make the resolver list again. etcd3 1.1.2 never settles `cancel()` of
// such a watcher, so the resolver must not wait for it (it bounds the cancel: cancelWatch).
//
// The race is made deterministic from a resolver listener: it runs synchronously right after the
// listing, before the resolver sends its watch request, and blocks the event loop while `etcdctl`
// (another process) writes and compacts past the listed revision. The resolver swallows errors of
// its listeners, so the listener records what it did and the test checks that the race happened:
// the compaction ran, and the resolver's watch was cancelled by etcd ('watch failed').

const ETCDCTL = process.env.ETCDCTL_BIN ?? 'etcdctl'

let etcd: EtcdServer
let client: Etcd3
const cleanups: (() => Promise<void> | void)[] = []

beforeAll(async () => {
  if (spawnSync(ETCDCTL, ['version']).status !== 0) {
    throw new Error(
      `these tests need etcdctl ('${ETCDCTL}' did not run): apt-get install etcd-client, or set ETCDCTL_BIN`,
    )
  }
  etcd = await EtcdServer.start()
  client = new Etcd3({ hosts: [etcd.endpoint] })
})

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

afterAll(async () => {
  client?.close()
  await etcd?.dispose()
})

let namespaces = 0
function uniqueNamespace(label: string): string {
  return `watch-cancel-${label}-${process.pid}-${++namespaces}`
}

function record(role: string, id: string): string {
  return JSON.stringify(sampleRecord(role, id, `http://127.0.0.1:1/${id}`, { get: 'query' }))
}

/** Resolves to 'settled' or, after `ms`, to 'pending'; never leaves a timer behind. */
async function settlesWithin(
  promise: Promise<unknown>,
  ms: number,
): Promise<'settled' | 'pending'> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise.then(
        () => 'settled' as const,
        () => 'settled' as const,
      ),
      new Promise<'pending'>((resolve) => {
        timer = setTimeout(() => resolve('pending'), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

function etcdctl(...args: string[]): string {
  return execFileSync(ETCDCTL, ['--endpoints', etcd.endpoint, ...args], {
    encoding: 'utf8',
    timeout: 10_000,
  })
}

/** What the listener that makes the race did: the revision it compacted at, or why it could not. */
interface RaceSetup {
  compactedAt?: number
  error?: string
}

/**
 * Subscribes to `resolver` so that, right after its first listing and before its watch request,
 * `<role>/<newId>` is put and etcd is compacted past the listed revision. The resolver swallows a
 * listener's errors: the returned record says whether that happened.
 */
function compactRightAfterListing(
  resolver: EtcdResolver,
  namespace: string,
  role: string,
  newId: string,
): RaceSetup {
  const setup: RaceSetup = {}
  let done = false
  resolver.subscribe(() => {
    if (done) return
    done = true
    try {
      etcdctl('put', instanceKey(namespace, role, newId), record(role, newId))
      etcdctl('put', `/${namespace}/unrelated`, 'x')
      const status = JSON.parse(etcdctl('endpoint', 'status', '-w', 'json')) as {
        Status: { header: { revision: number } }
      }[]
      const revision = status[0]?.Status.header.revision
      if (revision === undefined) throw new Error('etcdctl endpoint status gave no revision')
      etcdctl('compact', String(revision), '--physical')
      setup.compactedAt = revision
    } catch (err) {
      setup.error = String(err)
    }
  })
  return setup
}

/** The race happened: the listener compacted, and etcd cancelled the resolver's watch. */
async function raceHappened(setup: RaceSetup, logLines: string[]): Promise<void> {
  expect(setup.error).toBeUndefined()
  expect(setup.compactedAt).toBeGreaterThan(0)
  await waitFor('the resolver watch cancelled by etcd', () =>
    logLines.some((line) => line.includes('watch failed')),
  )
}

function startResolver(etcdClient: Etcd3, role: string, namespace: string) {
  const logLines: string[] = []
  const log = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) })
  const resolver = new EtcdResolver(etcdClient, role, namespace, log)
  cleanups.push(async () => {
    await settlesWithin(resolver.close(), 3_000)
  })
  return { resolver, logLines }
}

function describeState(resolver: EtcdResolver, logLines: string[]): string {
  return (
    `endpoints=[${resolver.endpoints.map((e) => e.id).join(',')}] stale=${resolver.stale} ` +
    `lastError=${resolver.lastError}\nlog:\n${logLines.join('')}`
  )
}

it('etcd3 1.1.2: cancel() of a watcher that etcd canceled never settles (the pitfall the resolver must avoid)', async () => {
  const prefix = `/${uniqueNamespace('raw')}/`
  for (let i = 0; i < 5; i++) await client.put(`${prefix}k`).value(String(i))
  const { revision } = (await client.get(`${prefix}k`).exec()).header
  await client.kv.compact({ revision, physical: true })
  const own = new Etcd3({ hosts: [etcd.endpoint] })
  cleanups.push(() => own.close())

  const watcher = own.watch().prefix(prefix).startRevision('1').watcher()
  const error = await new Promise<Error>((resolve) => watcher.once('error', resolve))
  expect(error.message).toMatch(/canceled/i)
  // If this starts failing, etcd3 fixed it: good news, the resolver's workaround can go.
  expect(await settlesWithin(watcher.cancel(), 2_000)).toBe('pending')
})

it('a resolver whose new watch etcd cancels (compacted right after the listing) lists again and keeps tracking', async () => {
  const ns = uniqueNamespace('single')
  await client.put(instanceKey(ns, 'cache', 'a')).value(record('cache', 'a'))
  const etcdClient = createEtcdClient([etcd.endpoint])
  cleanups.push(() => etcdClient.close())
  const { resolver, logLines } = startResolver(etcdClient, 'cache', ns)
  const setup = compactRightAfterListing(resolver, ns, 'cache', 'b')
  await resolver.whenListed(10_000)
  await raceHappened(setup, logLines)

  const sees = (wanted: string[]) => () =>
    !resolver.stale &&
    resolver.endpoints
      .map((e) => e.id)
      .sort()
      .join() === wanted.join()
  await waitFor('a and b, fresh', sees(['a', 'b']), 10_000).catch((err: Error) => {
    throw new Error(`${err.message}; ${describeState(resolver, logLines)}`)
  })
  await client.put(instanceKey(ns, 'cache', 'c')).value(record('cache', 'c'))
  await waitFor('a, b and c', sees(['a', 'b', 'c']), 10_000)
})

// With resolvers sharing one client (as Dependencies does, one client per process), a cancel
// request for the watcher etcd already cancelled would be answered by etcd for a watcher etcd3 no
// longer knows, and etcd3 would throw "Failed to find watcher for IWatchResponse" out of its stream
// handler (an uncaught error; the shared watch stream would stop delivering).
it("one resolver's canceled watch neither breaks the others on the same client nor throws out of etcd3", async () => {
  const ns = uniqueNamespace('shared')
  await client.put(instanceKey(ns, 'api', 'x1')).value(record('api', 'x1'))
  await client.put(instanceKey(ns, 'cache', 'a')).value(record('cache', 'a'))
  const etcdClient = createEtcdClient([etcd.endpoint])
  cleanups.push(() => etcdClient.close())
  const api = startResolver(etcdClient, 'api', ns)
  await api.resolver.whenListed(10_000)

  const cache = startResolver(etcdClient, 'cache', ns)
  const setup = compactRightAfterListing(cache.resolver, ns, 'cache', 'b')
  await cache.resolver.whenListed(10_000)

  // Once the cache resolver's watch has failed (and its resync has sent its cancel request), the
  // api resolver must still hear about changes.
  await raceHappened(setup, cache.logLines)
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  await client.put(instanceKey(ns, 'api', 'x2')).value(record('api', 'x2'))
  await waitFor(
    'api resolver sees x2',
    () => api.resolver.endpoints.some((e) => e.id === 'x2'),
    10_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; api: ${describeState(api.resolver, api.logLines)}`)
  })
  await waitFor(
    'cache resolver sees a and b, fresh',
    () =>
      !cache.resolver.stale &&
      cache.resolver.endpoints
        .map((e) => e.id)
        .sort()
        .join() === 'a,b',
    10_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; cache: ${describeState(cache.resolver, cache.logLines)}`)
  })
})
