import { EventEmitter, once } from 'node:events'
import { type Etcd3, EtcdLeaseInvalidError, type IKeyValue, type Lease, type Watcher } from 'etcd3'
import type { Logger } from 'pino'
import type { EtcdAccess } from '../config/etcd-access.js'
import { backoffDelay } from '../internal/backoff.js'
import { lifecycle } from '../internal/lifecycle-event.js'
import { sleep, withTimeout } from '../internal/timers.js'
import { explainEtcdRefusal } from './etcd-access-error.js'
import {
  cancelWatch,
  ETCD_CALL_TIMEOUT_MS,
  isStaleTokenError,
  renewWatchAuth,
} from './etcd-client.js'
import type { PhoneBookRecord } from './record.js'

export interface RegistrationOptions {
  client: Etcd3
  /** The endpoints `client` talks to, named in log lines about etcd being unreachable. */
  endpoints: readonly string[]
  /** TLS and etcd user `client` uses: named in the line when etcd refuses them. */
  access?: EtcdAccess | undefined
  /** `/<namespace>/services/<role>/<id>` */
  key: string
  ttlSeconds: number
  /** How often load figures may be rewritten (only when they changed). */
  loadRefreshMs: number
  /** The record to publish now (load figures sampled at call time). */
  record: () => PhoneBookRecord
  log: Logger
}

export type RegistrationState = 'registering' | 'registered' | 'stopped'

/** The put of the record was refused for lack of permission: not retried. */
class WriteRefused extends Error {}

/** A granted lease with keepalives running, and the registration attempt its events belong to. */
interface HeldLease {
  lease: Lease
  /** etcd's id of the lease (decimal, as its API writes it). */
  id: string
  generation: number
}

/**
 * The watch on our own key (deletes only: etcd sends it no put). prepare() makes it with the
 * lease, before the put, so that the put is the only thing between ready and visible; otherwise
 * it is made right after the put, from the next revision. A delete at a revision after our put is
 * a loss; one before it removed an older record.
 */
interface SelfWatch {
  watcher: Watcher
  /** The registration attempt (lease) it belongs to. */
  generation: number
  /** Our put's revision, once known. */
  putRevision: bigint | undefined
  /** The latest delete seen while the put's revision was not known yet (0n if none). */
  deletedBeforePut: bigint
}

/**
 * Waits for the lease's first keepalive answer, its loss, or ETCD_CALL_TIMEOUT_MS. Right after a
 * grant etcd3 opens the lease's keepalive stream and sends a keepalive on it; a put sent beside
 * them waits behind them (~0.4 ms at p50, more at the tail). A lease prepared ahead has that round
 * trip behind it before start(), so the visible put goes out alone.
 */
function firstKeepalive(held: HeldLease): Promise<HeldLease> {
  const { lease } = held
  if (lease.revoked()) return Promise.resolve(held)
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      lease.off('keepaliveSucceeded', done)
      lease.off('lost', done)
      resolve(held)
    }
    const timer = setTimeout(done, ETCD_CALL_TIMEOUT_MS)
    timer.unref()
    lease.on('keepaliveSucceeded', done)
    lease.on('lost', done)
  })
}

/**
 * Keeps one instance's phone book record in etcd: a key on a lease kept alive by heartbeats.
 * A lost lease (etcd restarted or wiped, lease revoked, key deleted, keepalives unanswered for a
 * TTL) is noticed and the record is put again on a new lease, with backoff, until `stop()`.
 *
 * `prepare()` grants the lease ahead of `start()` (the runtime calls it while the server is still
 * starting), so that the record becomes visible one etcd write (the put) after the instance is
 * ready to serve, not two.
 *
 * Events: `registered`, `unregistered` (reason: string), `refused` (line: string): etcd will
 * never let these credentials write this role's prefix, so retrying is pointless; registration
 * stops and the owner decides (`framework start` exits 2).
 */
export class Registration extends EventEmitter {
  #state: RegistrationState = 'registering'
  #lease: Lease | undefined
  #selfWatch: SelfWatch | undefined
  /** Bumped on every registration attempt; events of older leases and watchers are ignored. */
  #generation = 0
  #lastAck = 0
  #lastLoad = ''
  /** The current lease's id as etcd's API writes it (decimal), while registered. */
  #leaseDecimal: string | undefined
  #loopRunning = false
  #started = false
  /** The lease `prepare()` granted (undefined if the grant failed), until start() takes it. */
  #prepared: Promise<HeldLease | undefined> | undefined
  #outageLogged = false
  readonly #stopping = new AbortController()
  readonly #timers: NodeJS.Timeout[] = []

  constructor(private readonly options: RegistrationOptions) {
    super()
  }

  get state(): RegistrationState {
    return this.#state
  }

  get registered(): boolean {
    return this.#state === 'registered'
  }

  /** The id of the current lease, while registered (hex, as etcdctl shows it). */
  leaseId: string | undefined

  /**
   * Grants the lease now, before `start()`, with keepalives running on it meanwhile, so that
   * start() costs one etcd write. Call it once the key is known, while the server still starts.
   * Never rejects: if the grant fails, start() grants as it would have without. A lease that is
   * gone by start() (revoked, expired, etcd wiped) is replaced there. `stop()` revokes it, also
   * when start() never came. The own-key watch is made here too (if it is not ready, start()
   * watches after its put, as without prepare). Resolves once the grant is answered (or failed)
   * and the lease's first keepalive and the watch are (or ETCD_CALL_TIMEOUT_MS passed).
   */
  prepare(): Promise<void> {
    if (this.#started || this.#state !== 'registering') return Promise.resolve()
    this.#prepared ??= this.#grant()
      .then((held) =>
        Promise.all([
          firstKeepalive(held),
          this.#watchSelf(held.generation, undefined, ETCD_CALL_TIMEOUT_MS).catch(() => undefined),
        ]),
      )
      .then(([held]) => held)
      .catch((err: unknown) => {
        // Not an error yet: start() grants again, and logs (with the fix) if that fails too.
        this.options.log.debug(
          { err: err instanceof Error ? err.message : String(err) },
          'could not grant the lease ahead of start; start() grants it',
        )
        return undefined
      })
    return this.#prepared.then(() => undefined)
  }

  /** Starts registering in the background; failures are retried forever. */
  start(): void {
    if (this.#started || this.#state === 'stopped') return
    this.#started = true
    const { ttlSeconds, loadRefreshMs } = this.options
    // Keepalives are sent every TTL/3: no acknowledgement for a whole TTL means the lease has
    // (or is about to have) expired, even if etcd3's own 'lost' would come only after 2×TTL.
    this.#timers.push(setInterval(() => this.#checkLiveness(), (ttlSeconds * 1000) / 4).unref())
    this.#timers.push(setInterval(() => void this.#refreshLoad(), loadRefreshMs).unref())
    void this.#registerLoop()
  }

  /** Revokes the lease (the key disappears at once) and stops re-registering. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return
    this.#state = 'stopped'
    this.#stopping.abort()
    for (const timer of this.#timers) clearInterval(timer)
    const lease = this.#lease
    this.#lease = undefined
    // Revoke first: callers see the delete one round trip sooner. The own-key watch's delete
    // event is ignored now that the state is 'stopped'; it is closed afterwards.
    if (lease) {
      try {
        await withTimeout(lease.revoke(), ETCD_CALL_TIMEOUT_MS, 'lease revoke timed out')
        // A lease granted ahead of a start() that never came carried no record.
        if (this.#started) {
          this.options.log.info(
            { ...lifecycle('deregistered'), key: this.options.key },
            'lease revoked, record removed',
          )
        } else {
          this.options.log.debug({ key: this.options.key }, 'lease granted ahead of start revoked')
        }
      } catch (err) {
        lease.release()
        this.options.log.warn(
          { err, key: this.options.key },
          this.#started
            ? 'could not revoke the lease; the record expires with its TTL'
            : 'could not revoke the lease granted ahead of start; it expires with its TTL',
        )
      }
    }
    await this.#closeSelfWatch()
  }

  async #registerLoop(): Promise<void> {
    if (this.#loopRunning) return
    this.#loopRunning = true
    try {
      for (let attempt = 0; this.#state === 'registering'; attempt++) {
        try {
          await this.#registerOnce()
          return
        } catch (err) {
          if (this.#state !== 'registering') return
          if (err instanceof WriteRefused) {
            this.options.log.error({ key: this.options.key }, err.message)
            this.#state = 'stopped'
            for (const timer of this.#timers) clearInterval(timer)
            this.emit('refused', err.message)
            return
          }
          const delayMs = backoffDelay(attempt)
          const refusal = explainEtcdRefusal(err, this.options.endpoints, this.options.access)
          if (refusal) {
            // TLS or credentials: etcd is up but turns us away. One line that names the fix;
            // retried, since the fix (a CA, a password file, a user) may be applied meanwhile.
            this.options.log.warn(
              { attempt: attempt + 1, retryInMs: delayMs, refusal: refusal.kind },
              `${refusal.line}; still serving, retrying`,
            )
            await sleep(delayMs, this.#stopping.signal)
            continue
          }
          this.options.log.warn(
            {
              err: err instanceof Error ? err.message : String(err),
              etcd: this.options.endpoints.join(','),
              attempt: attempt + 1,
              retryInMs: delayMs,
            },
            `cannot register in etcd at ${this.options.endpoints.join(',')}; still serving, retrying. ` +
              'Is etcd running and ETCD_ENDPOINTS right? (start one: framework dev, or etcd --data-dir /tmp/etcd)',
          )
          await sleep(delayMs, this.#stopping.signal)
        }
      }
    } finally {
      this.#loopRunning = false
    }
  }

  /** One attempt: the prepared lease if it is still alive, else a new one; then the put on it. */
  async #registerOnce(): Promise<void> {
    try {
      await this.#registerOnLease()
    } catch (err) {
      // Also when no lease could be granted: the lost registration's own-key watch is closed
      // while etcd is away, not cancelled later while etcd3 resumes its watch stream (a
      // cancel racing that resumption makes etcd3 throw "Failed to find watcher" and crash).
      await this.#closeSelfWatch()
      throw err
    }
  }

  async #registerOnLease(): Promise<void> {
    const prepared = await this.#takePrepared()
    if (prepared) {
      try {
        await this.#registerOn(prepared)
        return
      } catch (err) {
        // etcd refused the put, so nothing was written: the lease went between the check and
        // the put (revoked, expired, etcd wiped). Not an outage: grant a new one at once.
        if (!(err instanceof EtcdLeaseInvalidError) || this.#state !== 'registering') throw err
        this.options.log.info(
          { key: this.options.key, reason: err.message },
          'the lease granted ahead of start is gone; granting a new one',
        )
      }
    }
    await this.#registerOn(await this.#grant())
  }

  /**
   * The lease `prepare()` granted, if it is usable: not lost, and acknowledged within half a TTL
   * (a lease whose keepalives go unanswered may expire right after the put). Else it is let go
   * and undefined is returned. Waits for a grant still on its way: it is further along than a new one.
   */
  async #takePrepared(): Promise<HeldLease | undefined> {
    const pending = this.#prepared
    this.#prepared = undefined
    const held = await pending
    if (!held || this.#state === 'stopped') return undefined
    const silentMs = Date.now() - this.#lastAck
    if (
      held.generation === this.#generation &&
      !held.lease.revoked() &&
      silentMs < (this.options.ttlSeconds * 1000) / 2
    ) {
      return held
    }
    held.lease.release()
    this.options.log.info(
      { key: this.options.key, revoked: held.lease.revoked(), silentMs },
      'the lease granted ahead of start is no longer alive; granting a new one',
    )
    return undefined
  }

  /** A new lease, granted, with keepalives running; its events count while it is the current one. */
  async #grant(): Promise<HeldLease> {
    const { client, ttlSeconds, log } = this.options
    // stop() may have come while this attempt waited: a lease granted now would never be revoked.
    if (this.#state === 'stopped') throw new Error('registration stopped')
    const generation = ++this.#generation
    const lease = client.lease(ttlSeconds, { autoKeepAlive: true })
    this.#lease = lease
    let granted = false
    lease.on('lost', (err: Error) => {
      // A granted lease lost before its record was put (prepared, then revoked or expired):
      // said here, since nothing else shows it; the put refuses it and a new one is granted.
      if (granted && generation === this.#generation && this.#state === 'registering') {
        log.info(
          { key: this.options.key, reason: err.message },
          'lease lost before the record was registered on it; a new one is granted',
        )
      }
      this.#onLost(generation, `lease lost: ${err.message}`)
    })
    lease.on('keepaliveSucceeded', () => {
      if (generation !== this.#generation) return
      this.#lastAck = Date.now()
      if (this.#outageLogged) log.info('keepalive acknowledged again')
      this.#outageLogged = false
    })
    // etcd3 types the argument as a response; it is the error.
    lease.on('keepaliveFailed', (err: unknown) => {
      if (generation !== this.#generation || this.#outageLogged) return
      this.#outageLogged = true
      log.warn({ err: String(err), etcd: this.options.endpoints.join(',') }, 'keepalive failed')
    })
    try {
      const id = await withTimeout(lease.grant(), ETCD_CALL_TIMEOUT_MS * 2, 'lease grant timed out')
      granted = true
      // etcd granted it a full TTL just now.
      if (generation === this.#generation) this.#lastAck = Date.now()
      return { lease, id: BigInt(id).toString(10), generation }
    } catch (err) {
      lease.release()
      throw err
    }
  }

  /**
   * Puts the record on `held` (one etcd write) and, unless prepare() already did, watches the key
   * from the next revision; the lease is let go on failure.
   */
  async #registerOn(held: HeldLease): Promise<void> {
    const { key, ttlSeconds, log } = this.options
    const { lease, generation } = held
    try {
      if (this.#state !== 'registering') throw new Error('stopped while registering')
      const watch = this.#selfWatch?.generation === generation ? this.#selfWatch : undefined
      const record = this.options.record()
      const put = await withTimeout(
        lease.put(key).value(JSON.stringify(record)).exec(),
        ETCD_CALL_TIMEOUT_MS * 2,
        'put timed out',
      ).catch((err: unknown) => {
        throw this.#writeRefused(err) ?? err
      })
      this.#lastLoad = JSON.stringify(record.load)
      const putRevision = BigInt(put.header.revision)
      if (!watch) {
        await this.#watchSelf(generation, putRevision)
      } else {
        watch.putRevision = putRevision
        if (this.#selfWatch !== watch) throw new Error('own-key watch failed while registering')
        if (watch.deletedBeforePut > putRevision)
          throw new Error('own key deleted while registering')
      }
      if (lease.revoked() || this.#state !== 'registering')
        throw new Error('lease ended while registering')
      this.leaseId = BigInt(held.id).toString(16)
      this.#leaseDecimal = held.id
    } catch (err) {
      lease.release()
      await this.#closeSelfWatch()
      throw err
    }
    this.#lastAck = Date.now()
    this.#state = 'registered'
    log.info(
      { ...lifecycle('registered'), key, lease: this.leaseId, ttl: ttlSeconds },
      'registered in etcd',
    )
    this.emit('registered')
  }

  /** A permission-denied put: these credentials belong to another role (or to a reader). */
  #writeRefused(err: unknown): WriteRefused | undefined {
    const { key, endpoints, access } = this.options
    const prefix = key.slice(0, key.lastIndexOf('/') + 1)
    const role = prefix.split('/').at(-2) ?? '?'
    const refusal = explainEtcdRefusal(err, endpoints, access, `write ${prefix}`)
    if (refusal?.kind !== 'permission') return undefined
    const user = access?.username ? `etcd user ${access.username}` : 'this etcd client'
    return new WriteRefused(
      `${user} may not write ${prefix}: permission denied; give role ${role} its own credentials (framework etcd setup-auth) and set ETCD_USERNAME / ETCD_PASSWORD_FILE to them`,
    )
  }

  /**
   * Watches our own key for deletes, for the attempt `generation`: from now on (before its put), or
   * from the revision after `putRevision`. A delete by anyone after the put is seen at once.
   */
  async #watchSelf(
    generation: number,
    putRevision?: bigint,
    timeoutMs = ETCD_CALL_TIMEOUT_MS * 2,
  ): Promise<void> {
    await this.#closeSelfWatch()
    const { client, key } = this.options
    const builder = client.watch().key(key).only('delete')
    if (putRevision !== undefined) builder.startRevision((putRevision + 1n).toString())
    const watcher = builder.watcher()
    const watch: SelfWatch = { watcher, generation, putRevision, deletedBeforePut: 0n }
    this.#selfWatch = watch
    watcher.on('delete', (kv: IKeyValue) => {
      // etcd gives a delete event the revision of the delete.
      const revision = BigInt(kv.mod_revision)
      if (watch.putRevision === undefined) {
        if (revision > watch.deletedBeforePut) watch.deletedBeforePut = revision
      } else if (revision > watch.putRevision) {
        this.#onLost(generation, 'own key was deleted')
      }
    })
    watcher.on('error', (err: Error) => {
      // etcd restarted and forgot our token: the watch stream must log in again.
      if (isStaleTokenError(err)) renewWatchAuth(client)
      // Before the put, the attempt notices it: its watch is gone.
      if (this.#selfWatch === watch && this.#state !== 'registered') void this.#closeSelfWatch()
      this.#onLost(generation, `own-key watch failed: ${err.message}`)
    })
    try {
      await withTimeout(once(watcher, 'connected'), timeoutMs, 'watch timed out')
    } catch (err) {
      if (this.#selfWatch === watch) await this.#closeSelfWatch()
      throw err
    }
  }

  async #closeSelfWatch(): Promise<void> {
    const watch = this.#selfWatch
    this.#selfWatch = undefined
    if (watch) await cancelWatch(watch.watcher)
  }

  #onLost(generation: number, reason: string): void {
    if (generation !== this.#generation || this.#state !== 'registered') return
    this.#state = 'registering'
    this.leaseId = undefined
    this.#leaseDecimal = undefined
    this.#lease?.release()
    this.options.log.warn(
      { ...lifecycle('registration-lost'), key: this.options.key, reason },
      'registration lost; registering again',
    )
    this.emit('unregistered', reason)
    void this.#registerLoop()
  }

  #checkLiveness(): void {
    if (this.#state !== 'registered') return
    const silentMs = Date.now() - this.#lastAck
    if (silentMs > this.options.ttlSeconds * 1000) {
      this.#onLost(this.#generation, `no keepalive acknowledged for ${silentMs} ms`)
    }
  }

  /**
   * Rewrites the record on the same lease when the load figures changed; bounded by the timer.
   *
   * The put is a transaction guarded by "the key is still on this lease": a refresh sent on a
   * lease that is then given up (keepalives unanswered through an etcd leader election) can be
   * applied after the re-registration's put. Unguarded, it would move the key back to the
   * abandoned lease, which expires a TTL later and takes the record with it.
   */
  async #refreshLoad(): Promise<void> {
    const lease = this.#lease
    const leaseId = this.#leaseDecimal
    if (this.#state !== 'registered' || !lease || !leaseId) return
    // Keepalives are late: etcd is in trouble; the liveness check decides, refresh later.
    if (Date.now() - this.#lastAck > (this.options.ttlSeconds * 1000) / 2) return
    const record = this.options.record()
    const load = JSON.stringify(record.load)
    if (load === this.#lastLoad) return
    const { client, key } = this.options
    try {
      const result = await withTimeout(
        client
          .if(key, 'Lease', '==', leaseId)
          .then(client.put(key).value(JSON.stringify(record)).lease(leaseId))
          .commit(),
        ETCD_CALL_TIMEOUT_MS,
        'load refresh timed out',
      )
      if (result.succeeded) this.#lastLoad = load
    } catch (err) {
      this.options.log.debug({ err }, 'load refresh failed; keepalive decides about the lease')
    }
  }
}
