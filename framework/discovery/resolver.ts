import type { Endpoint } from './endpoint.js'

/** A change to a role's set of live instances. */
export type ResolverUpdate =
  | { op: 'add'; endpoint: Endpoint }
  | { op: 'update'; endpoint: Endpoint }
  | { op: 'remove'; endpoint: Endpoint }

/**
 * The live instances of one role, kept current from the phone book. While the phone book is
 * unreachable the last known set stays (and `stale` is true): never empty because etcd is down.
 */
export interface Resolver {
  readonly role: string
  /** The current instances (do not mutate). */
  readonly endpoints: readonly Endpoint[]
  /** True while the phone book cannot be read and `endpoints` may be out of date. */
  readonly stale: boolean
  /** True once a listing has succeeded at least once. */
  readonly listed: boolean
  /** Why the phone book could not be read last; `undefined` if it never failed. */
  readonly lastError: string | undefined
  /** Resolves once listed, or rejects after `timeoutMs` with the reason the phone book is unreachable. */
  whenListed(timeoutMs: number): Promise<void>
  /** Called with every add/update/remove; returns an unsubscribe function. */
  subscribe(listener: (update: ResolverUpdate) => void): () => void
  close(): Promise<void>
}
