import { resolveEtcdAccess } from '../../../config/etcd-access.js'
import { DevCollector } from '../../../telemetry/dev-collector.js'
import type { RoleManifest } from '../../build/manifest.js'
import { Dashboard } from './dashboard-server.js'

/** What `framework dev` runs beside the services: the trace collector and the dashboard. */
export interface DevDashboard {
  dashboard: Dashboard
  collector: DevCollector
  /** What every instance (and the gateway) gets in its environment: export to the collector. */
  env: Record<string, string>
  close(): Promise<void>
}

export interface DevDashboardOptions {
  etcdEndpoints: string[]
  namespace: string
  /** The build manifest's roles (declared deps, input schemas). */
  roles: readonly RoleManifest[]
  /** dev's own environment: what the user set wins. */
  env: NodeJS.ProcessEnv
  say(line: string): void
}

/**
 * The environment that sends the services' traces to the collector: every trace sampled and
 * exported within half a second, unless the user chose otherwise (their OTEL_* variables stay;
 * with their own endpoint the dashboard shows no traces, and says so).
 */
export function devTelemetryEnv(
  env: NodeJS.ProcessEnv,
  collectorEndpoint: string,
): Record<string, string> {
  const own = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
  return {
    ...(own ? {} : { OTEL_EXPORTER_OTLP_ENDPOINT: collectorEndpoint }),
    ...(env.OTEL_TRACES_SAMPLER ? {} : { OTEL_TRACES_SAMPLER: 'parentbased_always_on' }),
    ...(env.OTEL_BSP_SCHEDULE_DELAY ? {} : { OTEL_BSP_SCHEDULE_DELAY: '500' }),
  }
}

/**
 * Starts the collector and the dashboard; undefined (said why) when they cannot start: dev goes
 * on without them rather than fail the services.
 */
export async function startDevDashboard(
  options: DevDashboardOptions,
): Promise<DevDashboard | undefined> {
  let collector: DevCollector | undefined
  try {
    collector = await DevCollector.start()
    const dashboard = await Dashboard.start({
      etcdEndpoints: options.etcdEndpoints,
      // The etcd the services use may want TLS or an etcd user (ETCD_CA_FILE, ETCD_USERNAME, …).
      etcdAccess: resolveEtcdAccess(options.env, options.etcdEndpoints),
      namespace: options.namespace,
      collector,
      roles: options.roles,
    })
    const env = devTelemetryEnv(options.env, collector.endpoint)
    if (!env.OTEL_EXPORTER_OTLP_ENDPOINT) {
      options.say(
        'traces go to your OTEL_EXPORTER_OTLP_ENDPOINT: the dashboard shows none (unset it to see them)',
      )
    }
    const started = collector
    return {
      dashboard,
      collector: started,
      env,
      async close() {
        await dashboard.close()
        await started.close()
      },
    }
  } catch (err) {
    await collector?.close()
    options.say(`no dashboard (${(err as Error).message}); the services run without it`)
    return undefined
  }
}
