import { Gauge, type Registry } from 'prom-client'
import { METRIC_PREFIX } from './metrics.js'

/** What the gauges read of a resolver (discovery/resolver.ts has it; telemetry sits below it). */
export interface ResolverView {
  readonly role: string
  readonly stale: boolean
  readonly endpoints: readonly { isEjected(now: number): boolean }[]
}

/**
 * Instances each dependency role's resolver knows, read at scrape time (nothing on the call
 * path): `live` (in rotation), `ejected` (out of rotation after failures), `stale` (all the
 * known instances while the phone book cannot be read: kept, but possibly out of date).
 */
export function resolverGauges(registry: Registry, resolvers: () => Iterable<ResolverView>): void {
  new Gauge({
    name: `${METRIC_PREFIX}resolver_instances`,
    help: 'Instances of each dependency role known to this process, by state (live, ejected, stale).',
    labelNames: ['role', 'state'],
    registers: [registry],
    collect() {
      const now = Date.now()
      for (const resolver of resolvers()) {
        let ejected = 0
        for (const endpoint of resolver.endpoints) if (endpoint.isEjected(now)) ejected++
        const known = resolver.endpoints.length
        this.set({ role: resolver.role, state: 'live' }, known - ejected)
        this.set({ role: resolver.role, state: 'ejected' }, ejected)
        this.set({ role: resolver.role, state: 'stale' }, resolver.stale ? known : 0)
      }
    },
  })
}
