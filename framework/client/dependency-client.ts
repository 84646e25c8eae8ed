import type { Logger } from 'pino'
import { type Balancer, BalancerKeyError } from '../discovery/balancers/index.js'
import type { Endpoint } from '../discovery/endpoint.js'
import type { Resolver } from '../discovery/resolver.js'
import { isTokenRefused } from '../protocol/call-token.js'
import { CALLER_KEY, type CallMetadata, NO_METADATA, PRINCIPAL_KEY } from '../protocol/metadata.js'
import { isOverloadedAnswer } from '../protocol/overload.js'
import type { CallTokens, SigningKey } from '../security/call-tokens.js'
import type { CallOptions } from '../service/router-client.js'
import type { DependencyMetrics } from '../telemetry/client-metrics.js'
import { type ClientCallSpan, startClientCall } from '../telemetry/spans.js'
import type { Tracing } from '../telemetry/tracing-handle.js'
import { DependencyCallError, RemoteProcedureError } from './call-errors.js'
import {
  type HttpAnswer,
  type HttpTransport,
  type TimedAnswer,
  TransportError,
} from './http-transport.js'
import type { RetryBudget } from './retry-budget.js'

/** Retries of one call at most (so at most three attempts). */
export const MAX_RETRIES = 2
export const DEFAULT_TIMEOUT_MS = 10_000
/** Shortest per-attempt timeout when a call's deadline is split among attempts. */
const MIN_ATTEMPT_MS = 250

export interface DependencyClientOptions {
  role: string
  namespace: string
  /** etcd endpoints, named in "no instance" messages. */
  etcdEndpoints: readonly string[]
  resolver: Resolver
  transport: HttpTransport
  balancer: Balancer
  budget: RetryBudget
  timeoutMs: number
  /** Calls to this role in flight at once, at most (`deps.<role>.maxInflight`); none when unset. */
  maxInflight?: number
  log: Logger
  /** One CLIENT span per call, with an event per attempt, when tracing is on. */
  tracing?: Tracing
  /** Counts attempts, retries, reroutes and ejections (an instance's /metrics). */
  metrics?: DependencyMetrics
  /** Call tokens (FRAMEWORK_AUTH=token): each attempt carries one for this role. */
  tokens?: CallTokens | undefined
}

/** The instance serves `path`, is not ejected, and this call has not tried it. */
function fits(
  endpoint: Endpoint,
  path: string,
  now: number,
  tried: Set<Endpoint> | undefined,
): boolean {
  return (
    endpoint.record.procedures[path] !== undefined &&
    !endpoint.isEjected(now) &&
    tried?.has(endpoint) !== true
  )
}

/**
 * Calls one dependency role: picks a live instance (balancer), sends the call (transport),
 * and on failure ejects the instance and retries where that is safe (policy):
 * queries after a connection failure, a 503 or a per-attempt timeout, on another instance;
 * mutations only when the request provably never reached a server. A call that never reached
 * its instance (a refused connection, an instance leaving) is rerouted without spending the
 * retry budget. A call an instance shed (over its in-flight limit, so it never ran) goes to
 * another instance, mutations included, spending the budget. With `maxInflight`, calls beyond
 * that many in flight fail at once (a bulkhead: a slow dependency cannot take every request).
 */
export class DependencyClient {
  /** Calls in flight (only counted with a `maxInflight`). */
  #inflight = 0
  /**
   * Instances that refused a token signed with the current secret and took one signed with the
   * previous: not restarted onto the new secret yet (a rotation in progress).
   */
  readonly #onPreviousSecret = new WeakSet<Endpoint>()

  constructor(private readonly options: DependencyClientOptions) {}

  get role(): string {
    return this.options.role
  }

  /**
   * Calls `path` with `input`; `parentDeadline` (epoch ms) caps the deadline, from the caller's
   * own request, and `metadata` travels with every attempt (request id, caller).
   */
  call(
    path: string,
    input: unknown,
    callOptions?: CallOptions,
    parentDeadline?: number,
    metadata?: CallMetadata,
  ): Promise<unknown> {
    const { maxInflight } = this.options
    if (maxInflight === undefined)
      return this.#traced(path, input, callOptions, parentDeadline, metadata)
    if (this.#inflight >= maxInflight) return Promise.reject(this.#saturated(path, maxInflight))
    this.#inflight++
    return this.#traced(path, input, callOptions, parentDeadline, metadata).finally(() => {
      this.#inflight--
    })
  }

  #traced(
    path: string,
    input: unknown,
    callOptions: CallOptions | undefined,
    parentDeadline: number | undefined,
    metadata: CallMetadata | undefined,
  ): Promise<unknown> {
    const span = startClientCall(
      this.options.tracing,
      this.options.role,
      path,
      metadata ?? NO_METADATA,
    )
    if (span === undefined) return this.#call(path, input, callOptions, parentDeadline, metadata)
    return span.track(this.#call(path, input, callOptions, parentDeadline, span.metadata, span))
  }

  async #call(
    path: string,
    input: unknown,
    callOptions: CallOptions | undefined,
    parentDeadline: number | undefined,
    metadata: CallMetadata | undefined,
    span?: ClientCallSpan,
  ): Promise<unknown> {
    const { resolver, budget } = this.options
    const started = Date.now()
    const timeoutMs = callOptions?.timeoutMs ?? this.options.timeoutMs
    let deadline = started + timeoutMs
    if (parentDeadline !== undefined && parentDeadline < deadline) deadline = parentDeadline
    const allowedMs = deadline - started
    if (!resolver.listed) await this.#awaitListing(deadline)
    budget.deposit()
    // Instances this call failed on; made at the first failure (most calls have none).
    let tried: Set<Endpoint> | undefined
    for (let retries = 0; ; ) {
      const endpoint = this.#choose(path, input, tried)
      const kind = endpoint.record.procedures[path]!
      const remaining = deadline - Date.now()
      if (remaining <= 0) throw this.#timeout(path, allowedMs)
      // The deadline is split among attempts only when a retry could follow: a query, retries
      // left, another healthy instance to try, and budget. Otherwise one attempt gets it all.
      const canRetryElsewhere =
        kind === 'query' &&
        retries < MAX_RETRIES &&
        budget.canWithdraw() &&
        this.#hasAlternative(path, endpoint, tried)
      const attemptMs = canRetryElsewhere
        ? Math.min(remaining, Math.max(MIN_ATTEMPT_MS, allowedMs / (MAX_RETRIES + 1)))
        : remaining
      let answer: HttpAnswer
      // The attempt's bookkeeping is here, around its await, not in an async #attempt of its
      // own: one promise fewer between the answer and the caller (the hot path).
      endpoint.inflight++
      const attemptStarted = performance.now()
      try {
        answer = this.#observed(
          endpoint,
          await this.#attempt(
            endpoint,
            kind,
            path,
            input,
            attemptMs,
            callOptions?.signal,
            metadata,
          ),
        )
      } catch (err) {
        this.#attemptEnded(endpoint, attemptStarted)
        if (!(err instanceof TransportError)) throw err
        if (err.reason === 'aborted') {
          throw new DependencyCallError(
            'aborted',
            `${this.#where(path)}: call aborted by the caller`,
            err,
          )
        }
        if (err.reason === 'connect') this.#eject(endpoint, err.message)
        span?.attempt(endpoint.id, retries, err.reason, endpoint.isEjected(Date.now()))
        tried ??= new Set()
        tried.add(endpoint)
        const deadlineLeft = deadline - Date.now()
        // Never reached the instance (it is leaving, or the connection failed before a byte
        // left): a reroute, not a retry. Another healthy instance takes it, mutations included,
        // without spending the retry budget (it adds no work to any instance); each instance at
        // most once per call.
        const reroutable = !err.sent && err.reason !== 'input'
        if (reroutable && deadlineLeft > 0 && this.#hasAlternative(path, endpoint, tried)) {
          this.options.metrics?.rerouted()
          continue
        }
        const retryable = err.reason !== 'input' && (kind === 'query' || !err.sent)
        if (retryable && retries < MAX_RETRIES && deadlineLeft > 0 && budget.withdraw()) {
          retries++
          this.#retried(endpoint, err.reason)
          continue
        }
        if (err.reason === 'timeout') throw this.#timeout(path, allowedMs, err)
        throw new DependencyCallError(
          'unreachable',
          `${this.#where(path)}: instance ${endpoint.id} at ${endpoint.url} failed (${err.message})` +
            (retries > 0 ? ` after ${retries} retr${retries === 1 ? 'y' : 'ies'}` : ''),
          err,
        )
      }
      this.#attemptEnded(endpoint, attemptStarted)
      // A shed call never ran: any call may go elsewhere. The instance is alive and answered at
      // once, so it stays in rotation (ejecting it would pile its share onto the others).
      const shed = isOverloadedAnswer(answer.status, answer.body)
      if (answer.status >= 500 && !shed) this.#eject(endpoint, `HTTP ${answer.status}`)
      span?.attempt(endpoint.id, retries, answer.status, endpoint.isEjected(Date.now()))
      const retryable = shed
        ? this.#hasAlternative(path, endpoint, tried)
        : answer.status === 503 && kind === 'query'
      if (retryable && retries < MAX_RETRIES && deadline > Date.now() && budget.withdraw()) {
        tried ??= new Set()
        tried.add(endpoint)
        retries++
        this.#retried(endpoint, shed ? 'shed (over its in-flight limit)' : 'HTTP 503')
        continue
      }
      return this.#unwrap(path, endpoint, answer)
    }
  }

  /**
   * One attempt's answer: without call tokens, the transport's own promise (no closure, no
   * promise of its own); with them, signed first (and, while secrets rotate, sent again with the
   * other secret when refused for it).
   */
  #attempt(
    endpoint: Endpoint,
    kind: 'query' | 'mutation',
    path: string,
    input: unknown,
    /** Both the time this attempt may take and the deadline the callee is told. */
    attemptMs: number,
    callerSignal: AbortSignal | undefined,
    metadata: CallMetadata | undefined,
  ): Promise<TimedAnswer> {
    const { tokens } = this.options
    if (tokens === undefined) {
      return this.#send(endpoint, kind, path, input, attemptMs, callerSignal, metadata)
    }
    // No rotation in progress: one secret, so no second try with the other (and no instance is
    // on a previous one): the cached token goes out at once, no async step of its own.
    if (!tokens.hasPrevious) {
      return this.#sendSigned(
        tokens,
        'current',
        endpoint,
        kind,
        path,
        input,
        attemptMs,
        callerSignal,
        metadata,
      )
    }
    return this.#attemptSigned(
      tokens,
      endpoint,
      kind,
      path,
      input,
      attemptMs,
      callerSignal,
      metadata,
    )
  }

  async #attemptSigned(
    tokens: CallTokens,
    endpoint: Endpoint,
    kind: 'query' | 'mutation',
    path: string,
    input: unknown,
    attemptMs: number,
    callerSignal: AbortSignal | undefined,
    metadata: CallMetadata | undefined,
  ): Promise<TimedAnswer> {
    const send = (key: SigningKey) =>
      this.#sendSigned(tokens, key, endpoint, kind, path, input, attemptMs, callerSignal, metadata)
    const first: SigningKey = this.#onPreviousSecret.has(endpoint) ? 'previous' : 'current'
    let answer = await send(first)
    if (tokens.hasPrevious && isTokenRefused(answer.status, answer.body)) {
      // A rotation in progress: this instance holds only the other secret (not restarted onto
      // the new one yet, or restarted without the previous one since). A refused token ran
      // nothing (the marker says so; a procedure's own 401 has none), so sending again is
      // safe for mutations too. The key that worked is the one used for it from now on.
      const other: SigningKey = first === 'current' ? 'previous' : 'current'
      answer = await send(other)
      if (!isTokenRefused(answer.status, answer.body)) {
        if (other === 'previous') this.#onPreviousSecret.add(endpoint)
        else this.#onPreviousSecret.delete(endpoint)
      }
    }
    return answer
  }

  /** An attempt ended (answered or failed): no longer in flight, and counted. */
  #attemptEnded(endpoint: Endpoint, started: number): void {
    endpoint.inflight--
    this.options.metrics?.attempted(started)
  }

  /** An answer below 500 is a sign of health, and its latency feeds the balancer. */
  #observed(endpoint: Endpoint, answer: TimedAnswer): TimedAnswer {
    if (answer.status < 500) {
      endpoint.succeeded()
      this.options.balancer.observe?.(endpoint, answer.latencyMs, Date.now())
    }
    return answer
  }

  /**
   * Sends one attempt with its token: at once when the role's token is cached and no end user
   * travels (the common case: no promise, no object per call), else once it is signed.
   */
  #sendSigned(
    tokens: CallTokens,
    key: SigningKey,
    endpoint: Endpoint,
    kind: 'query' | 'mutation',
    path: string,
    input: unknown,
    attemptMs: number,
    callerSignal: AbortSignal | undefined,
    metadata: CallMetadata | undefined,
  ): Promise<TimedAnswer> {
    if (metadata?.[CALLER_KEY] === undefined) {
      const token = tokens.token(this.options.role, undefined, key)
      if (typeof token === 'string') {
        return this.#send(endpoint, kind, path, input, attemptMs, callerSignal, metadata, token)
      }
    }
    return this.#signed(tokens, key, metadata).then((signed) =>
      this.#send(
        endpoint,
        kind,
        path,
        input,
        attemptMs,
        callerSignal,
        signed.metadata,
        signed.token,
      ),
    )
  }

  /** One attempt on the wire: `attemptMs` is both its timeout and the deadline the callee is told. */
  #send(
    endpoint: Endpoint,
    kind: 'query' | 'mutation',
    path: string,
    input: unknown,
    attemptMs: number,
    callerSignal: AbortSignal | undefined,
    metadata: CallMetadata | undefined,
    token?: string,
  ): Promise<TimedAnswer> {
    return this.options.transport.send(
      endpoint.url,
      kind,
      path,
      input,
      attemptMs,
      attemptMs,
      callerSignal,
      metadata,
      token,
    )
  }

  /**
   * The attempt's token (this role's, cached) and its metadata: an end user (CALLER_KEY) travels
   * signed, as a PRINCIPAL_KEY token of its own, never as the unsigned key.
   */
  async #signed(
    tokens: CallTokens,
    key: SigningKey,
    metadata: CallMetadata | undefined,
  ): Promise<{ token: string; metadata: CallMetadata | undefined }> {
    const role = this.options.role
    const token = await tokens.token(role, undefined, key)
    const principal = metadata?.[CALLER_KEY]
    if (principal === undefined) return { token, metadata }
    const { [CALLER_KEY]: _, ...rest } = metadata!
    return {
      token,
      metadata: { ...rest, [PRINCIPAL_KEY]: await tokens.token(role, principal, key) },
    }
  }

  #unwrap(path: string, endpoint: Endpoint, answer: HttpAnswer): unknown {
    const body = answer.body as
      | {
          result?: { data?: unknown }
          error?: { message?: string; data?: { code?: string; httpStatus?: number } }
        }
      | undefined
    if (answer.status < 300 && body?.result) return body.result.data
    const error = body?.error
    throw new RemoteProcedureError(`${this.#where(path)} (instance ${endpoint.id})`, {
      message: error?.message ?? `HTTP ${answer.status} without a tRPC error body`,
      code: error?.data?.code ?? 'INTERNAL_SERVER_ERROR',
      httpStatus: error?.data?.httpStatus ?? answer.status,
      data: error?.data,
    })
  }

  /** The instance a call would go to now (any procedure), or undefined if none is known. */
  pick(): Endpoint | undefined {
    const all = this.options.resolver.endpoints
    if (all.length === 0) return undefined
    const now = Date.now()
    const healthy = all.filter((endpoint) => !endpoint.isEjected(now))
    return this.options.balancer.pick(healthy.length > 0 ? healthy : all)
  }

  /**
   * The balancer's pick among the healthy instances serving `path` not yet tried by this call
   * (falling back so a call always has one).
   */
  #choose(path: string, input: unknown, tried: Set<Endpoint> | undefined): Endpoint {
    const all = this.options.resolver.endpoints
    if (all.length === 0) throw this.#noInstance()
    const now = Date.now()
    // The common case, checked without allocating: every instance serves the path, is healthy
    // and untried, so the balancer picks among them all.
    let allFit = true
    for (const endpoint of all) {
      if (!fits(endpoint, path, now, tried)) {
        allFit = false
        break
      }
    }
    const candidates = allFit ? all : this.#candidates(path, all, now, tried)
    try {
      return this.options.balancer.pick(candidates, { path, input })
    } catch (err) {
      if (!(err instanceof BalancerKeyError)) throw err
      throw new DependencyCallError(
        'bad-hash-key',
        `${this.#where(path)}: the hash balancer of dependency '${this.options.role}' cannot route this call: ${err.message}; deps.${this.options.role}.balancer.hash must return a string (or undefined to balance the call by p2c)`,
        err,
      )
    }
  }

  /**
   * The instances serving `path`: the healthy ones not yet tried by this call, else those not yet
   * tried, else all of them (a call always has one).
   */
  #candidates(
    path: string,
    all: readonly Endpoint[],
    now: number,
    tried: Set<Endpoint> | undefined,
  ): readonly Endpoint[] {
    const serving = all.filter((endpoint) => endpoint.record.procedures[path] !== undefined)
    if (serving.length === 0) {
      const known = Object.keys(all[0]!.record.procedures).join(', ')
      throw new DependencyCallError(
        'unknown-procedure',
        `role '${this.options.role}' has no procedure '${path}' (its instances serve: ${known || 'nothing'}); is the dependency's contract older than yours?`,
      )
    }
    let candidates = serving.filter((endpoint) => fits(endpoint, path, now, tried))
    if (candidates.length === 0) candidates = serving.filter((endpoint) => !tried?.has(endpoint))
    if (candidates.length === 0) candidates = serving
    return candidates
  }

  /** Another healthy instance serving `path` that this call has not tried yet. */
  #hasAlternative(path: string, current: Endpoint, tried: Set<Endpoint> | undefined): boolean {
    const now = Date.now()
    for (const other of this.options.resolver.endpoints) {
      if (other !== current && fits(other, path, now, tried)) return true
    }
    return false
  }

  /** Passive health: out of rotation for a growing backoff, unless it is the last healthy one. */
  #eject(endpoint: Endpoint, reason: string): void {
    const now = Date.now()
    if (endpoint.isEjected(now)) return
    const othersHealthy = this.options.resolver.endpoints.some(
      (other) => other !== endpoint && !other.isEjected(now),
    )
    if (!othersHealthy) return
    const backoffMs = endpoint.eject(now)
    this.options.log.warn(
      { role: this.options.role, instance: endpoint.id, url: endpoint.url, reason, backoffMs },
      'instance ejected',
    )
    this.options.metrics?.ejected()
  }

  /** A retry is logged (as ejections are) and counted: the two can be checked against each other. */
  #retried(endpoint: Endpoint, reason: string): void {
    this.options.log.info(
      { role: this.options.role, instance: endpoint.id, reason },
      'call retried on another instance',
    )
    this.options.metrics?.retried()
  }

  async #awaitListing(deadline: number): Promise<void> {
    const { resolver } = this.options
    // A listing already failed: etcd is down and nothing is known; fail now, not at the deadline.
    if (resolver.lastError !== undefined) {
      throw new DependencyCallError(
        'phone-book-unreachable',
        `cannot find role '${this.options.role}': etcd at ${this.options.etcdEndpoints.join(',')} is unreachable (${resolver.lastError}) and no instance is known yet`,
      )
    }
    try {
      await resolver.whenListed(Math.max(1, deadline - Date.now()))
    } catch (err) {
      throw new DependencyCallError('phone-book-unreachable', (err as Error).message, err)
    }
  }

  #noInstance(): DependencyCallError {
    const { role, namespace, etcdEndpoints, resolver } = this.options
    const stale = resolver.stale ? ` (etcd unreachable: ${resolver.lastError})` : ''
    return new DependencyCallError(
      'no-instance',
      `no live instance of role '${role}' (namespace '${namespace}', etcd ${etcdEndpoints.join(',')})${stale}; is it running? try: framework ps`,
    )
  }

  #saturated(path: string, maxInflight: number): DependencyCallError {
    const { role } = this.options
    return new DependencyCallError(
      'saturated',
      `${this.#where(path)}: ${maxInflight} calls to role '${role}' already in flight, the most deps.${role}.maxInflight allows; the call was not sent. Raise deps.${role}.maxInflight, add instances of '${role}', or send fewer calls at once`,
    )
  }

  #timeout(path: string, allowedMs: number, cause?: unknown): DependencyCallError {
    return new DependencyCallError(
      'timeout',
      `${this.#where(path)}: no answer within the deadline (${allowedMs} ms; set timeoutMs per call or per dependency, or give the caller more time)`,
      cause,
    )
  }

  #where(path: string): string {
    return `${this.options.role}.${path}`
  }
}
