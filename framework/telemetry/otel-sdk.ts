import * as api from '@opentelemetry/api'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import {
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
} from '@opentelemetry/sdk-trace-base'
import { PinnedIds, sampleDecision } from './sampling.js'
import type { TracedService, Tracing } from './tracing-handle.js'

/**
 * The OpenTelemetry SDK behind `Tracing`; imported by `startTracing` only when tracing is on.
 * No global registration and no context manager: the framework carries the trace context itself
 * (call metadata in, `ctx.deps` metadata out), so the hot path needs no async-hooks storage.
 */
export function startOtelTracing(env: NodeJS.ProcessEnv, service: TracedService): Tracing {
  const ids = new PinnedIds()
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      'service.name': env.OTEL_SERVICE_NAME?.trim() || service.role,
      'service.instance.id': service.instance,
    }),
    // The exporter and the batch processor read their OTEL_EXPORTER_OTLP_* and OTEL_BSP_*
    // variables. OTEL_TRACES_SAMPLER(_ARG) is applied before a span is started (sampling.ts):
    // what reaches the tracer is kept.
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
    sampler: new AlwaysOnSampler(),
    idGenerator: ids,
  })
  return {
    role: service.role,
    tracer: provider.getTracer('framework'),
    sample: sampleDecision(env),
    ids,
    api,
    shutdown: () => provider.shutdown(),
  }
}
