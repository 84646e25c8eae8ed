import { collectDefaultMetrics, Registry } from 'prom-client'

/** Every metric the framework defines starts with this. */
export const METRIC_PREFIX = 'framework_'

/** Call and attempt durations (s): from a sub-millisecond stream call to one near the deadline. */
export const DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
]

/** The label value of a procedure path the service (or the dependency) does not have. */
export const UNKNOWN_PROCEDURE = 'unknown'

/**
 * One process's metrics: its own prom-client registry (never the global one, so several
 * instances in one test process do not collide) with prom-client's default process metrics.
 * The groups (server-metrics.ts, client-metrics.ts, …) register their metrics on it.
 */
export class ProcessMetrics {
  readonly registry = new Registry()

  constructor() {
    collectDefaultMetrics({ register: this.registry })
  }

  /** The Prometheus text exposition of every metric, and its content type. */
  async scrape(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() }
  }
}
