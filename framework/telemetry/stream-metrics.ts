import { Gauge, type Registry } from 'prom-client'
import { METRIC_PREFIX } from './metrics.js'

/**
 * Open RPC streams, read at scrape time: `server` (connections callers upgraded to this
 * instance) and `client` (this process's streams to its dependencies' instances).
 */
export function streamGauges(
  registry: Registry,
  open: { server: () => number; client: () => number },
): void {
  new Gauge({
    name: `${METRIC_PREFIX}rpc_streams_open`,
    help: 'Open RPC streams, by side (server: accepted by this instance; client: opened by it).',
    labelNames: ['side'],
    registers: [registry],
    collect() {
      this.set({ side: 'server' }, open.server())
      this.set({ side: 'client' }, open.client())
    },
  })
}
