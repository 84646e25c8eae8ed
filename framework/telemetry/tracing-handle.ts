import type { Tracer } from '@opentelemetry/api'
import type { PinnedIds, SampleDecision } from './sampling.js'

/**
 * The handle an instance traces with, made by `startTracing` (tracing.ts) from the SDK
 * (otel-sdk.ts); the hooks take it as `Tracing | undefined`. Types only: importing this file
 * loads nothing.
 */
export interface Tracing {
  /** The role whose calls this instance serves (the spans' `framework.role`). */
  readonly role: string
  /** Always records: only the calls `sample` keeps reach it (sampling.ts). */
  readonly tracer: Tracer
  /** The configured sampler's decision, made before a span is started. */
  readonly sample: SampleDecision
  /** The tracer's id generator: a kept root span takes the trace id it was sampled on. */
  readonly ids: PinnedIds
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
