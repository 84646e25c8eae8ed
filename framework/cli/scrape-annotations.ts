import { METRICS_PATH } from '../telemetry/metrics-endpoint.js'

/**
 * Where a Prometheus scraper finds a process's metrics, in the `prometheus.io/*` convention that
 * Kubernetes service discovery configs (pod annotations) and Docker/compose ones (labels) read.
 * Without a fixed port (host network, several replicas) only `scrape` and `path` are said: the
 * port is each instance's own, in its phone book record.
 */
export function scrapeAnnotations(port: number | undefined): Record<string, string> {
  return {
    'prometheus.io/scrape': 'true',
    ...(port ? { 'prometheus.io/port': String(port) } : {}),
    'prometheus.io/path': METRICS_PATH,
  }
}
