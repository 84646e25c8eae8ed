import { Counter, Gauge, type Registry } from 'prom-client'
import { METRIC_PREFIX } from './metrics.js'

/** What the metrics read of a registration (registry/registration.ts: its events and state). */
export interface RegistrationView {
  readonly registered: boolean
  on(event: 'registered', listener: () => void): unknown
}

/**
 * The instance's place in the phone book: a gauge (1 while registered), a counter of
 * re-registrations (every `registered` event after the first: a lost lease replaced), and
 * whether etcd is reachable as this process last saw it (registered, and every dependency's
 * resolver current rather than stale). A process that registers nothing (the gateway) has only
 * the last, from its resolvers.
 */
export function registrationMetrics(
  registry: Registry,
  registration: RegistrationView | undefined,
  resolversStale: () => boolean,
): void {
  const registers = [registry]
  new Gauge({
    name: `${METRIC_PREFIX}etcd_reachable`,
    help: '1 while etcd answers this process (registered, and no dependency resolver stale), else 0.',
    registers,
    collect() {
      this.set((registration?.registered ?? true) && !resolversStale() ? 1 : 0)
    },
  })
  if (!registration) return
  new Gauge({
    name: `${METRIC_PREFIX}registration_registered`,
    help: '1 while this instance is registered in the phone book (etcd), else 0.',
    registers,
    collect() {
      this.set(registration.registered ? 1 : 0)
    },
  })
  const reregistrations = new Counter({
    name: `${METRIC_PREFIX}registration_reregistrations_total`,
    help: 'Times the instance registered again on a new lease after losing its registration.',
    registers,
  })
  let registrations = 0
  registration.on('registered', () => {
    if (++registrations > 1) reregistrations.inc()
  })
}
