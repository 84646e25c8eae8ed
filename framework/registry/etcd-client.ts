import {
  ConsecutiveBreaker,
  circuitBreaker,
  ExponentialBackoff,
  handleWhen,
  type IBackoff,
  retry,
} from 'cockatiel'
import { Etcd3, type IOptions, isRecoverableError, type Watcher } from 'etcd3'
import type { EtcdAccess } from '../config/etcd-access.js'
import { withTimeout } from '../internal/timers.js'

/** Deadline of one unary etcd call; etcd3 ignores `dialTimeout`, so every call carries its own. */
export const ETCD_CALL_TIMEOUT_MS = 2_000

/**
 * Cancels a watch, bounded and never throwing: etcd3's cancel of a watcher whose stream is gone
 * (etcd down, or a watch etcd itself cancelled) never settles.
 */
export async function cancelWatch(watcher: Watcher): Promise<void> {
  await withTimeout(watcher.cancel(), ETCD_CALL_TIMEOUT_MS, 'watch cancel timed out').catch(
    () => undefined,
  )
}

/** etcd3's TLS and password options for `access` (none for a plain etcd). */
export function etcdAccessOptions(access: EtcdAccess | undefined): Partial<IOptions> {
  if (!access) return {}
  const options: Partial<IOptions> = {}
  if (access.ca || access.cert) {
    options.credentials = {
      // grpc-js's createSsl takes null for "the system's roots"; etcd3's type asks for a Buffer.
      rootCertificate: access.ca ?? (null as unknown as Buffer),
      ...(access.cert && access.key ? { certChain: access.cert, privateKey: access.key } : {}),
    }
  }
  if (access.username && access.password !== undefined) {
    options.auth = {
      username: access.username,
      password: access.password,
      // A factory: a fixed deadline would be in the past for every later authentication.
      callOptions: () => ({ deadline: Date.now() + ETCD_CALL_TIMEOUT_MS }),
    }
  }
  return options
}

/**
 * An etcd client tuned for a phone book: short call deadlines, a host breaker that half-opens
 * after 1 s and watch reconnects capped at 2 s, so a restarted etcd is noticed within seconds
 * (the library defaults are 5 s and 30 s). `access` adds TLS and the etcd user.
 */
export function createEtcdClient(endpoints: readonly string[], access?: EtcdAccess): Etcd3 {
  return new Etcd3({
    ...etcdAccessOptions(access),
    hosts: [...endpoints],
    defaultCallOptions: (context) =>
      context.isStream ? {} : { deadline: Date.now() + ETCD_CALL_TIMEOUT_MS },
    faultHandling: {
      host: () =>
        circuitBreaker(handleWhen(isRecoverableError), {
          halfOpenAfter: 1_000,
          breaker: new ConsecutiveBreaker(3),
        }),
      global: retry(handleWhen(isRecoverableError), { maxAttempts: endpoints.length > 1 ? 2 : 0 }),
      // etcd3 types this as IBackoff but calls `.next()` on it first: a factory is what it uses.
      watchBackoff: new ExponentialBackoff({
        initialDelay: 100,
        maxDelay: 2_000,
      }) as unknown as IBackoff<unknown>,
    },
  })
}

/** The parts of etcd3 1.1.2's internals that hold the auth token of the shared watch stream. */
interface Etcd3Internals {
  pool?: { authenticator?: { invalidateMetadata?: () => void } }
  watchManager?: { state?: number; handleError?: (err: Error) => void }
}
/** etcd3's WatchManager state `Connected`. */
const WATCH_STREAM_CONNECTED = 2

/** Whether a watch was cancelled because its stream's token is one etcd no longer knows. */
export function isStaleTokenError(err: unknown): boolean {
  return err instanceof Error && /invalid auth token/.test(err.message)
}

/**
 * etcd keeps auth tokens in memory: after a restart it knows none. Unary calls recover (etcd3
 * logs in again on "invalid auth token"), but the watch stream keeps the token it was opened with,
 * and etcd cancels every watch created on it, forever — a resolver never sees a change again and a
 * registration cannot watch its own key. On such a cancel, this drops the cached token and the
 * stream; etcd3 reopens it (with its backoff) with a fresh token. etcd3 has no public way to do
 * this, hence the reach into its internals; each step is skipped if the shape is not there.
 */
export function renewWatchAuth(client: Etcd3): void {
  const internals = client as unknown as Etcd3Internals
  internals.pool?.authenticator?.invalidateMetadata?.()
  const manager = internals.watchManager
  if (manager?.state === WATCH_STREAM_CONNECTED) {
    manager.handleError?.(new Error('watch stream token expired; reconnecting with a new one'))
  }
}
