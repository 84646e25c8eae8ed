import type { Tracer } from '@opentelemetry/api'

/**
 * Tracing for one instance: on when an OTLP endpoint is configured, else nothing is loaded.
 * The OpenTelemetry SDK is imported only then (`otel-sdk.ts`), so an instance or a CLI command
 * that does not trace never holds it in memory, and every hook costs one `undefined` check.
 */
export interface Tracing {
  /** The role whose calls this instance serves (the spans' `framework.role`). */
  readonly role: string
  readonly tracer: Tracer
  /** `@opentelemetry/api`, loaded with the SDK (its values, not only its types, are needed). */
  readonly api: typeof import('@opentelemetry/api')
  /** Exports the spans still buffered and stops. */
  shutdown(): Promise<void>
}

/** Who the spans are from: the resource's `service.name` and `service.instance.id`. */
export interface TracedService {
  role: string
  instance: string
}

/**
 * Whether the environment asks for traces: an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), unless `OTEL_SDK_DISABLED=true` or
 * `OTEL_TRACES_EXPORTER=none`.
 */
export function tracingRequested(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false
  if (env.OTEL_TRACES_EXPORTER?.trim().toLowerCase() === 'none') return false
  return Boolean(
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim(),
  )
}

/**
 * Tracing as the environment asks (undefined when it does not): spans exported over OTLP/HTTP
 * (JSON) by the exporter's own env variables, sampled by `OTEL_TRACES_SAMPLER(_ARG)` (default
 * parent-based, always on).
 */
export async function startTracing(
  env: NodeJS.ProcessEnv,
  service: TracedService,
): Promise<Tracing | undefined> {
  if (!tracingRequested(env)) return undefined
  const { startOtelTracing } = await import('./otel-sdk.js')
  return startOtelTracing(env, service)
}
