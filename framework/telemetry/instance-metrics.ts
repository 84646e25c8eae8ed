import type { ProcedureKind } from '../protocol/procedure-kind.js'
import { ClientMetrics } from './client-metrics.js'
import { type ResolverView, resolverGauges } from './discovery-metrics.js'
import { ProcessMetrics } from './metrics.js'
import { type RegistrationView, registrationMetrics } from './registration-metrics.js'
import { ServerMetrics } from './server-metrics.js'
import { streamGauges } from './stream-metrics.js'

/** The parts of a booted instance whose state is read at scrape time. */
export interface ObservedParts {
  /** The instance's registration (a gateway registers nothing). */
  registration?: RegistrationView
  /** The resolvers of the declared dependencies (none without dependencies). */
  resolvers: () => Iterable<ResolverView>
  streams: { server: () => number; client: () => number }
}

/**
 * Everything one instance exposes at `/metrics`: process defaults, served calls, calls to its
 * dependencies, and (once `observe` is given them) resolver, registration and stream state.
 */
export class InstanceMetrics {
  readonly #process = new ProcessMetrics()
  readonly server: ServerMetrics
  readonly client: ClientMetrics

  constructor(procedures: Readonly<Record<string, ProcedureKind>>) {
    this.server = new ServerMetrics(this.#process.registry, procedures)
    this.client = new ClientMetrics(this.#process.registry)
  }

  /** Starts reading the state of `parts` at each scrape. */
  observe(parts: ObservedParts): void {
    const { registry } = this.#process
    resolverGauges(registry, parts.resolvers)
    const stale = () => {
      for (const resolver of parts.resolvers()) if (resolver.stale) return true
      return false
    }
    registrationMetrics(registry, parts.registration, stale)
    streamGauges(registry, parts.streams)
  }

  readonly scrape = () => this.#process.scrape()
}
