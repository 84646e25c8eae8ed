import type { Etcd3 } from 'etcd3'
import type { Logger } from 'pino'
import { createBalancer } from '../discovery/balancers/index.js'
import { EtcdResolver } from '../discovery/etcd-resolver.js'
import { sleep } from '../internal/timers.js'
import { type CallMetadata, hasMetadata } from '../protocol/metadata.js'
import type { DepOptions } from '../service/define-service.js'
import type { Tracing } from '../telemetry/tracing.js'
import { DependencyWaitError } from './call-errors.js'
import { DEFAULT_TIMEOUT_MS, DependencyClient } from './dependency-client.js'
import { HttpTransport, type TransportOptions } from './http-transport.js'
import { RetryBudget } from './retry-budget.js'
import { routerProxy } from './router-proxy.js'

export interface DependenciesOptions {
  etcd: Etcd3
  etcdEndpoints: readonly string[]
  namespace: string
  /** Declared dependency roles and their options; only these are watched. */
  deps: Readonly<Record<string, DepOptions>>
  log: Logger
  /** How calls travel (default: the RPC stream where the service speaks it). */
  transport?: TransportOptions
  /** Client spans for every call, when tracing is on. */
  tracing?: Tracing
}

/** The clients of a service's declared dependencies: one resolver, balancer and retry budget per role. */
export class Dependencies {
  readonly clients = new Map<string, DependencyClient>()
  readonly resolvers = new Map<string, EtcdResolver>()
  readonly #transport: HttpTransport
  readonly #unsubscribe: (() => void)[] = []
  readonly #shared: Record<string, unknown>

  constructor(options: DependenciesOptions) {
    const { etcd, etcdEndpoints, namespace, deps, log } = options
    this.#transport = new HttpTransport(options.transport)
    for (const [role, depOptions] of Object.entries(deps)) {
      const resolver = new EtcdResolver(etcd, role, namespace, log)
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
      this.clients.set(
        role,
        new DependencyClient({
          role,
          namespace,
          etcdEndpoints,
          resolver,
          transport: this.#transport,
          balancer: createBalancer(depOptions.balancer),
          budget: new RetryBudget(),
          timeoutMs: depOptions.timeoutMs ?? DEFAULT_TIMEOUT_MS,
          log,
          tracing: options.tracing,
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
        client.call(path, input, options, deadline, carried),
      )
    }
    return deps
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

  async close(): Promise<void> {
    for (const unsubscribe of this.#unsubscribe) unsubscribe()
    await Promise.all([...this.resolvers.values()].map((resolver) => resolver.close()))
    await this.#transport.close()
  }
}
