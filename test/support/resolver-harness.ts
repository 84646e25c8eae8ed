import { Etcd3 } from 'etcd3'
import { pino } from 'pino'
import { afterEach } from 'vitest'
import { EtcdResolver } from '../../framework/discovery/etcd-resolver.js'
import { withTimeout } from '../../framework/internal/timers.js'
import { createEtcdClient } from '../../framework/registry/etcd-client.js'
import { instanceKey, parseRecord } from '../../framework/registry/record.js'
import { sampleRecord } from './phone-book.js'
import { waitFor } from './wait.js'

// EtcdResolver against a real etcd, no mocks: the test writes phone book records with its own etcd3
// client, straight to etcd; the resolver's client may go through a TcpProxy, so cutting the proxy
// disconnects the resolver alone.

export const ROLE = 'cache'
/** Bound on every wait for the resolver to catch up. */
export const CATCH_UP_MS = 10_000

let namespaces = 0
export function uniqueNamespace(label: string): string {
  return `resolver-test-${label}-${process.pid}-${++namespaces}`
}

/** A record of `role` for `id` (url `http://127.0.0.1:1/<id>`), with `overrides` on top. */
export function recordObject(id: string, role = ROLE, overrides: Record<string, unknown> = {}) {
  return {
    ...sampleRecord(role, id, `http://127.0.0.1:1/${id}`, { get: 'query', set: 'mutation' }),
    ...overrides,
  }
}

/** A valid record for `id`, checked against the schema so a broken fixture fails loudly. */
export function validRecord(
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

export async function putInstance(
  client: Etcd3,
  namespace: string,
  id: string,
  overrides: Record<string, unknown> = {},
): Promise<void> {
  await client
    .put(instanceKey(namespace, ROLE, id))
    .value(validRecord(namespace, id, ROLE, overrides))
}

export async function deleteInstance(client: Etcd3, namespace: string, id: string): Promise<void> {
  await client.delete().key(instanceKey(namespace, ROLE, id))
}

/** The test's own client, straight to etcd. */
export function directClient(endpoint: string): Etcd3 {
  return new Etcd3({
    hosts: [endpoint],
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + 5_000 }),
  })
}

export interface Seen {
  op: 'add' | 'update' | 'remove'
  id: string
  version: string
}

export interface StartedResolver {
  resolver: EtcdResolver
  /** Every update, with the record's id and version at the time it was emitted. */
  updates: Seen[]
  /** The resolver's log lines (JSON), for failure messages. */
  logLines: string[]
}

/**
 * Things to stop after each test of the calling file, last first; a cleanup that fails fails the
 * test. Call once at the top of a test file.
 */
export function useCleanups(): (() => Promise<void> | void)[] {
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
  return cleanups
}

/** A resolver of ROLE on its own etcd client (debug log kept), closed by `cleanups`. */
export function startResolver(
  endpoint: string,
  namespace: string,
  cleanups: (() => Promise<void> | void)[],
): StartedResolver {
  const logLines: string[] = []
  const log = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) })
  const client = createEtcdClient([endpoint])
  const resolver = new EtcdResolver(client, ROLE, namespace, log)
  const updates: Seen[] = []
  resolver.subscribe(({ op, endpoint }) =>
    updates.push({ op, id: endpoint.id, version: endpoint.record.version }),
  )
  cleanups.push(async () => {
    // A hang in cleanup is a finding, not a hook timeout.
    await withTimeout(resolver.close(), 5_000, 'resolver.close() did not finish within 5000 ms')
    client.close()
  })
  return { resolver, updates, logLines }
}

export function ids(resolver: EtcdResolver): string[] {
  return resolver.endpoints.map((endpoint) => endpoint.id).sort()
}

/** waitFor, with the resolver's state and log in the failure message. */
export async function waitForResolver(
  started: StartedResolver,
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

export function sameIds(resolver: EtcdResolver, expected: string[]): boolean {
  const actual = ids(resolver)
  return (
    actual.length === expected.length && actual.every((id, i) => id === [...expected].sort()[i])
  )
}
