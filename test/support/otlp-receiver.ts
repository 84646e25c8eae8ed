import { DevCollector } from '../../framework/telemetry/dev-collector.js'
import { type CollectedSpan, SPAN_KIND } from '../../framework/telemetry/otlp-json.js'

/** One span as an OTLP/HTTP JSON export carried it, flattened (the collector's reading of it). */
export type ReceivedSpan = CollectedSpan

export const SERVER = SPAN_KIND.server
export const CLIENT = SPAN_KIND.client

/**
 * An OTLP/HTTP trace receiver on 127.0.0.1 for tests: `framework dev`'s collector (one reader of
 * the export format), with every span also kept here in arrival order, unbounded.
 */
export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = []

  private constructor(private readonly collector: DevCollector) {
    collector.onSpans((spans) => this.spans.push(...spans))
  }

  static async start(): Promise<OtlpReceiver> {
    // The store is the collector's own bounded one; tests read `spans` instead.
    return new OtlpReceiver(await DevCollector.start({ maxBodyBytes: 16 * 2 ** 20 }))
  }

  /** What `OTEL_EXPORTER_OTLP_ENDPOINT` should be. */
  get endpoint(): string {
    return this.collector.endpoint
  }

  /** Export requests refused (not JSON, wrong path, too large). */
  get refused(): number {
    return this.collector.refused
  }

  /** The spans of one trace. */
  trace(traceId: string): ReceivedSpan[] {
    return this.spans.filter((span) => span.traceId === traceId)
  }

  async close(): Promise<void> {
    await this.collector.close()
  }
}
