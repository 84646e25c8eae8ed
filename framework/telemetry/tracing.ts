import { ConfigError } from '../config/config-error.js'
import type { TracedService, Tracing } from './tracing-handle.js'

/*
 * Tracing for one instance: on when an OTLP endpoint is configured, else nothing is loaded.
 * The OpenTelemetry SDK is imported only then (`otel-sdk.ts`), so an instance or a CLI command
 * that does not trace never holds it in memory, and every hook costs one `undefined` check.
 */

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
  checkTracingEnv(env)
  const { startOtelTracing } = await import('./otel-sdk.js')
  return startOtelTracing(env, service)
}

/** The samplers OTEL_TRACES_SAMPLER may name (the SDK's own; it would fall back silently). */
const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
]

/**
 * Refuses the settings the SDK would misread without a word: an endpoint that is not an http(s)
 * URL, a protocol other than http/json (the one this exporter speaks), an unknown sampler, a
 * ratio outside 0..1.
 */
export function checkTracingEnv(env: NodeJS.ProcessEnv): void {
  for (const variable of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']) {
    const value = env[variable]?.trim()
    if (!value) continue
    let protocol: string | undefined
    try {
      protocol = new URL(value).protocol
    } catch {}
    if (protocol !== 'http:' && protocol !== 'https:') {
      throw new ConfigError(
        variable,
        value,
        `an http(s) URL, e.g. ${variable}=http://127.0.0.1:4318`,
      )
    }
  }
  for (const variable of ['OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL']) {
    const value = env[variable]?.trim()
    if (value && value !== 'http/json') {
      throw new ConfigError(
        variable,
        value,
        'http/json (traces are exported as OTLP/HTTP JSON), or leave it unset',
      )
    }
  }
  const sampler = env.OTEL_TRACES_SAMPLER?.trim()
  if (sampler && !SAMPLERS.includes(sampler)) {
    throw new ConfigError('OTEL_TRACES_SAMPLER', sampler, `one of ${SAMPLERS.join(', ')}`)
  }
  const ratio = env.OTEL_TRACES_SAMPLER_ARG?.trim()
  if (ratio && sampler?.endsWith('traceidratio')) {
    const value = Number(ratio)
    if (!(value >= 0 && value <= 1)) {
      throw new ConfigError(
        'OTEL_TRACES_SAMPLER_ARG',
        ratio,
        'the share of traces sampled, from 0 to 1, e.g. OTEL_TRACES_SAMPLER_ARG=0.01',
      )
    }
  }
}
