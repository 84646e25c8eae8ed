import type { Etcd3 } from 'etcd3'
import type { Logger } from 'pino'
import type { EtcdAccess } from '../config/etcd-access.js'
import { createBalancer } from '../discovery/balancers/index.js'
import { EtcdResolver } from '../discovery/etcd-resolver.js'
import { sleep } from '../internal/timers.js'
import { type CallMetadata, hasMetadata } from '../protocol/metadata.js'
import { explainEtcdRefusal } from '../registry/etcd-access-error.js'
import type { CallTokens } from '../security/call-tokens.js'
import type { DepOptions } from '../service/define-service.js'
import type { ClientMetrics, DependencyMetrics } from '../telemetry/client-metrics.js'
import type { Tracing } from '../telemetry/tracing-handle.js'
import { DependencyWaitError } from './call-errors.js'
import { measuredCall } from './call-outcome.js'
import { DEFAULT_TIMEOUT_MS, DependencyClient } from './dependency-client.js'
import { HttpTransport, type TransportOptions } from './http-transport.js'
import { RetryBudget } from './retry-budget.js'
import { routerProxy } from './router-proxy.js'

export interface DependenciesOptions {
  etcd: Etcd3
  etcdEndpoints: readonly string[]
  /** TLS files and etcd user `etcd` uses, named when etcd refuses them. */
  etcdAccess?: EtcdAccess | undefined
  namespace: string
  /** Declared dependency roles and their options; only these are watched. */
  deps: Readonly<Record<string, DepOptions>>
  log: Logger
  /** How calls travel (default: the RPC stream where the service speaks it). */
  transport?: TransportOptions
  /** Client spans for every call, when tracing is on. */
  tracing?: Tracing
  /** Where calls, attempts, retries and ejections are counted (an instance's /metrics). */
  metrics?: ClientMetrics
  /** Call tokens every call carries (FRAMEWORK_AUTH=token); none when undefined. */
  tokens?: CallTokens | undefined
}

/** The clients of a service's declared dependencies: one resolver, balancer and retry budget per role. */
export class Dependencies {
  readonly clients = new Map<string, DependencyClient>()
  /** Each role's metrics, when the process has metrics. */
  readonly #metrics = new Map<string, DependencyMetrics>()
  readonly resolvers = new Map<string, EtcdResolver>()
  readonly #transport: HttpTransport
  readonly #unsubscribe: (() => void)[] = []
  readonly #shared: Record<string, unknown>

  constructor(options: DependenciesOptions) {
    const { etcd, etcdEndpoints, namespace, deps, log } = options
    this.#transport = new HttpTransport(options.transport)
    for (const [role, depOptions] of Object.entries(deps)) {
      const resolver = new EtcdResolver(etcd, role, namespace, log, {
        explainRefusal: (err) =>
          explainEtcdRefusal(err, etcdEndpoints, options.etcdAccess, `read ${role}`)?.line,
      })
      this.#unsubscribe.push(
        resolver.subscribe((update) => {
          // A departed instance's pool is closed, unless another record still names its URL.
          if (
            update.op === 'remove' &&
            !resolver.endpoints.some((endpoint) => endpoint.url === update.endpoint.url)
          ) {
            this.#transport.release(update.endpoint.url)
          }
        }),
      )
      this.resolvers.set(role, resolver)
      const metrics = options.metrics?.forRole(role, (path) =>
        resolver.endpoints.some((endpoint) => endpoint.record.procedures[path] !== undefined),
      )
      if (metrics) this.#metrics.set(role, metrics)
      const budget = new RetryBudget()
      if (metrics) budget.onExhausted = () => metrics.budgetExhausted()
      this.clients.set(
        role,
        new DependencyClient({
          role,
          namespace,
          etcdEndpoints,
          resolver,
          transport: this.#transport,
          balancer: createBalancer(depOptions.balancer),
          budget,
          timeoutMs: depOptions.timeoutMs ?? DEFAULT_TIMEOUT_MS,
          maxInflight: depOptions.maxInflight,
          log,
          tracing: options.tracing,
          metrics,
          tokens: options.tokens,
        }),
      )
    }
    this.#shared = this.forRequest(undefined)
  }

  /**
   * `ctx.deps` for one request; calls made through it end no later than `deadline` (epoch ms) and
   * carry `metadata` (what propagates of the request's own) to the callee.
   */
  forRequest(deadline: number | undefined, metadata?: CallMetadata): Record<string, unknown> {
    const carried = hasMetadata(metadata) ? metadata : undefined
    if (deadline === undefined && carried === undefined && this.#shared) return this.#shared
    const deps: Record<string, unknown> = {}
    for (const [role, client] of this.clients) {
      deps[role] = routerProxy((path, input, options) =>
        this.measured(role, path, client.call(path, input, options, deadline, carried)),
      )
    }
    return deps
  }

  /** `call` (of `path` on `role`), counted in the process's metrics once it settles. */
  measured(role: string, path: string, call: Promise<unknown>): Promise<unknown> {
    const metrics = this.#metrics.get(role)
    return metrics ? measuredCall(metrics, path, call) : call
  }

  /** Resolves once every dependency has a live instance; rejects after `timeoutMs` naming the missing roles. */
  async waitForInstances(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const missing = [...this.resolvers.values()]
        .filter((resolver) => resolver.endpoints.length === 0)
        .map((resolver) => resolver.role)
      if (missing.length === 0) return
      if (Date.now() >= deadline) {
        throw new DependencyWaitError(
          missing,
          `waitForDeps: no live instance of ${missing.map((role) => `'${role}'`).join(', ')} after ${timeoutMs} ms; start ${missing.length === 1 ? 'it' : 'them'} (framework ps shows what is registered)`,
        )
      }
      await sleep(50)
    }
  }

  /** RPC streams open to the dependencies' instances. */
  get openStreams(): number {
    return this.#transport.openStreams
  }

  async close(): Promise<void> {
    for (const unsubscribe of this.#unsubscribe) unsubscribe()
    await Promise.all([...this.resolvers.values()].map((resolver) => resolver.close()))
    await this.#transport.close()
  }
}
