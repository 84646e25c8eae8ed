import type { Etcd3, IKeyValue, Watcher } from 'etcd3'
import type { Logger } from 'pino'
import { backoffDelay } from '../internal/backoff.js'
import { sleep, withTimeout } from '../internal/timers.js'
import {
  cancelWatch,
  ETCD_CALL_TIMEOUT_MS,
  isStaleTokenError,
  renewWatchAuth,
} from '../registry/etcd-client.js'
import { parseRecord, rolePrefix } from '../registry/record.js'
import { Endpoint } from './endpoint.js'
import type { Resolver, ResolverUpdate } from './resolver.js'

/**
 * After a relist of a store that is not the one watched before (etcd wiped, or replaced by another
 * cluster), instances missing from it get this long to register again before they are dropped:
 * live ones are re-registering at that moment, and dropping them would fail calls for nothing.
 */
export const NEW_STORE_GRACE_MS = 3_000

interface ResponseHeader {
  revision: string
  cluster_id: string
}

export interface EtcdResolverOptions {
  /** What is listed and watched; default the role's prefix (a whole namespace's: a phone book view). */
  prefix?: string
  /** One line naming the fix when etcd turns us away (TLS, etcd user), else undefined. */
  explainRefusal?: (err: unknown) => string | undefined
}

/**
 * Resolver backed by etcd: list the role's prefix, then watch from the listed revision + 1.
 * On a watch error (compaction cancels the watch), a revision that went backwards or a new
 * cluster id (etcd wiped and restarted: etcd3's watcher would silently resume from a revision
 * the new store never reaches) it lists again and starts a new watch.
 */
export class EtcdResolver implements Resolver {
  readonly #endpoints = new Map<string, Endpoint>()
  #snapshot: Endpoint[] = []
  readonly #listeners = new Set<(update: ResolverUpdate) => void>()
  /** Keys of malformed records already warned about, with the revision warned at. */
  readonly #warned = new Map<string, string>()
  #watcher: Watcher | undefined
  #revision = 0n
  #clusterId = ''
  #stale = true
  #listed = false
  #lastError: string | undefined
  #closed = false
  #resyncing = false
  #resyncAgain = false
  readonly #closing = new AbortController()
  #listedWaiters: (() => void)[] = []
  /** Removals put off after a new store was listed (see NEW_STORE_GRACE_MS). */
  readonly #graceTimers = new Map<string, NodeJS.Timeout>()

  /** What is listed and watched: the role's prefix; a whole namespace's for a phone book view. */
  private readonly prefix: string
  /** One line naming the fix when etcd turns us away (TLS, etcd user), else undefined. */
  private readonly explainRefusal: (err: unknown) => string | undefined

  constructor(
    private readonly client: Etcd3,
    readonly role: string,
    namespace: string,
    private readonly log: Logger,
    options: EtcdResolverOptions = {},
  ) {
    this.prefix = options.prefix ?? rolePrefix(namespace, role)
    this.explainRefusal = options.explainRefusal ?? (() => undefined)
    void this.#resync('start')
  }

  get endpoints(): readonly Endpoint[] {
    return this.#snapshot
  }

  get stale(): boolean {
    return this.#stale
  }

  get listed(): boolean {
    return this.#listed
  }

  get lastError(): string | undefined {
    return this.#lastError
  }

  whenListed(timeoutMs: number): Promise<void> {
    if (this.#listed) return Promise.resolve()
    return withTimeout(
      new Promise<void>((resolve) => this.#listedWaiters.push(resolve)),
      timeoutMs,
      `could not list role '${this.role}' from etcd within ${timeoutMs} ms (${this.#lastError ?? 'no answer yet'})`,
    )
  }

  subscribe(listener: (update: ResolverUpdate) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  async close(): Promise<void> {
    this.#closed = true
    for (const timer of this.#graceTimers.values()) clearTimeout(timer)
    this.#graceTimers.clear()
    this.#closing.abort()
    await this.#cancelWatcher()
    this.#watcher = undefined
  }

  /** List, then watch from there; retried with backoff until it works or the resolver closes. */
  async #resync(reason: string): Promise<void> {
    if (this.#resyncing) {
      this.#resyncAgain = true
      return
    }
    this.#resyncing = true
    try {
      for (let attempt = 0; !this.#closed; attempt++) {
        this.#resyncAgain = false
        try {
          await this.#listAndWatch()
          if (!this.#resyncAgain) return
        } catch (err) {
          this.#markStale(err instanceof Error ? err.message : String(err))
          const delayMs = backoffDelay(attempt, 100, 2_000)
          const refusal = this.explainRefusal(err)
          this.log.warn(
            { role: this.role, reason, err: this.#lastError, retryInMs: delayMs },
            `cannot list role '${this.role}' from etcd${refusal ? `: ${refusal}` : ''}; keeping the last known ${this.#snapshot.length} instance(s)`,
          )
          await sleep(delayMs, this.#closing.signal)
        }
      }
    } finally {
      this.#resyncing = false
    }
  }

  async #listAndWatch(): Promise<void> {
    await this.#cancelWatcher()
    this.#watcher = undefined
    const prefix = this.prefix
    const response = await this.client.getAll().prefix(prefix).exec()
    const header = response.header as unknown as ResponseHeader
    const revision = BigInt(header.revision)
    const newStore =
      this.#listed && (header.cluster_id !== this.#clusterId || revision < this.#revision)
    if (newStore) {
      this.log.info(
        { role: this.role, revision: header.revision, known: this.#revision.toString() },
        `etcd's store is new (wiped or replaced): instances missing from it get ${NEW_STORE_GRACE_MS} ms to register again`,
      )
    }
    this.#replaceAll(response.kvs, newStore)
    this.#revision = revision
    this.#clusterId = header.cluster_id
    if (this.#closed) return
    const watcher = this.client
      .watch()
      .prefix(prefix)
      .startRevision((this.#revision + 1n).toString())
      .watcher()
    this.#watcher = watcher
    watcher.on('put', (kv: IKeyValue) => this.#onWatched(watcher, kv, 'put'))
    watcher.on('delete', (kv: IKeyValue) => this.#onWatched(watcher, kv, 'delete'))
    let disconnected = false
    watcher.on('connected', (res: { header: ResponseHeader }) => {
      this.#onConnected(watcher, res.header, disconnected)
      disconnected = false
    })
    watcher.on('disconnected', (err: Error) => {
      disconnected = true
      if (watcher === this.#watcher) this.#markStale(`watch disconnected: ${err.message}`)
    })
    watcher.on('error', (err: Error) => {
      if (watcher !== this.#watcher || this.#closed) return
      // etcd restarted and forgot our token: the watch stream must log in again.
      if (isStaleTokenError(err)) renewWatchAuth(this.client)
      this.log.warn({ role: this.role, err: err.message }, 'watch failed; listing again')
      this.#markStale(`watch failed: ${err.message}`)
      // etcd cancelled it and etcd3 already dropped it: cancelling again would never settle.
      this.#watcher = undefined
      void this.#resync('watch error')
    })
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        watcher.once('connected', () => resolve())
        watcher.once('error', reject)
      }),
      ETCD_CALL_TIMEOUT_MS * 2,
      'watch did not connect',
    ).catch(async (err) => {
      await cancelWatch(watcher)
      throw err
    })
    this.#stale = false
    if (!this.#listed) {
      this.#listed = true
      for (const resolve of this.#listedWaiters.splice(0)) resolve()
    }
  }

  #onConnected(watcher: Watcher, header: ResponseHeader, reconnected: boolean): void {
    if (watcher !== this.#watcher) return
    const revision = BigInt(header.revision)
    // A reconnect may be to an etcd that was wiped or replaced meanwhile (same cluster id, and its
    // revision may have passed ours), where etcd3 resumes a watch from a revision that means
    // nothing: relist on every reconnect. It is one range request per role.
    if (reconnected || header.cluster_id !== this.#clusterId || revision < this.#revision) {
      this.log.info(
        { role: this.role, revision: header.revision, known: this.#revision.toString() },
        'watch reconnected; listing again',
      )
      void this.#resync('watch reconnected')
      return
    }
    this.#stale = false
  }

  #onWatched(watcher: Watcher, kv: IKeyValue, op: 'put' | 'delete'): void {
    if (watcher !== this.#watcher) return
    const revision = BigInt(kv.mod_revision)
    if (revision > this.#revision) this.#revision = revision
    const key = kv.key.toString()
    if (op === 'delete') {
      this.#remove(key)
    } else {
      this.#upsert(key, kv.value.toString(), kv.mod_revision)
    }
  }

  #replaceAll(kvs: IKeyValue[], graceful: boolean): void {
    const seen = new Set<string>()
    for (const kv of kvs) {
      const key = kv.key.toString()
      if (this.#upsert(key, kv.value.toString(), kv.mod_revision)) seen.add(key)
    }
    for (const key of [...this.#endpoints.keys()]) {
      if (seen.has(key)) continue
      if (graceful) this.#removeLater(key)
      else this.#remove(key)
    }
  }

  #removeLater(key: string): void {
    if (this.#graceTimers.has(key)) return
    const timer = setTimeout(() => {
      this.#graceTimers.delete(key)
      this.#remove(key)
    }, NEW_STORE_GRACE_MS)
    timer.unref()
    this.#graceTimers.set(key, timer)
  }

  #cancelRemoval(key: string): void {
    const timer = this.#graceTimers.get(key)
    if (!timer) return
    clearTimeout(timer)
    this.#graceTimers.delete(key)
  }

  /** Adds or updates an instance; a malformed record is skipped (and removes a previous valid one). */
  #upsert(key: string, raw: string, modRevision: string): boolean {
    const parsed = parseRecord(key, raw)
    if (!parsed.ok) {
      if (this.#warned.get(key) !== modRevision) {
        this.#warned.set(key, modRevision)
        this.log.warn(
          { role: this.role, key },
          `skipping malformed phone book record: ${parsed.reason}`,
        )
      }
      this.#remove(key)
      return false
    }
    this.#warned.delete(key)
    this.#cancelRemoval(key)
    const existing = this.#endpoints.get(key)
    if (existing) {
      existing.record = parsed.record
      this.#emit({ op: 'update', endpoint: existing })
    } else {
      const endpoint = new Endpoint(key, parsed.record)
      this.#endpoints.set(key, endpoint)
      this.#publish()
      this.#emit({ op: 'add', endpoint })
    }
    return true
  }

  #remove(key: string): void {
    this.#warned.delete(key)
    this.#cancelRemoval(key)
    const endpoint = this.#endpoints.get(key)
    if (!endpoint) return
    this.#endpoints.delete(key)
    this.#publish()
    this.#emit({ op: 'remove', endpoint })
  }

  #publish(): void {
    this.#snapshot = [...this.#endpoints.values()]
  }

  #emit(update: ResolverUpdate): void {
    for (const listener of this.#listeners) {
      try {
        listener(update)
      } catch (err) {
        this.log.error({ err }, 'resolver listener failed')
      }
    }
  }

  /** Cancels the current watch, bounded: etcd3's cancel of a dropped watcher never settles. */
  async #cancelWatcher(): Promise<void> {
    const watcher = this.#watcher
    this.#watcher = undefined
    if (watcher) await cancelWatch(watcher)
  }

  #markStale(reason: string): void {
    this.#lastError = reason
    this.#stale = true
  }
}
