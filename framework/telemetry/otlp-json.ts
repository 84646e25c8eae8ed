/**
 * The OTLP/HTTP JSON trace export (`ExportTraceServiceRequest`, what
 * @opentelemetry/exporter-trace-otlp-http sends), read into flat spans: the one reader of it,
 * used by the dev collector and the tests' receiver.
 */

/** An attribute value as the dashboard and the tests use it. */
export type SpanValue = string | number | boolean

/** One span of an export, flattened. */
export interface CollectedSpan {
  /** The exporting process's `service.name`. */
  service: string
  /** Its `service.instance.id` ('' when it has none). */
  instance: string
  traceId: string
  spanId: string
  /** Empty for a trace's root. */
  parentSpanId: string
  name: string
  /** OTLP's SpanKind: 1 INTERNAL, 2 SERVER, 3 CLIENT. */
  kind: number
  /** Epoch ms (fractional: OTLP sends ns). */
  startMs: number
  endMs: number
  /** OTLP's status code: 0 unset, 1 ok, 2 error. */
  status: number
  attributes: Record<string, SpanValue>
  events: { name: string; timeMs: number; attributes: Record<string, SpanValue> }[]
}

export const SPAN_KIND = { internal: 1, server: 2, client: 3 } as const

type OtlpValue = {
  stringValue?: string
  intValue?: string | number
  boolValue?: boolean
  doubleValue?: number
}
type OtlpAttribute = { key?: unknown; value?: OtlpValue }

function attributesOf(list: unknown): Record<string, SpanValue> {
  const out: Record<string, SpanValue> = {}
  if (!Array.isArray(list)) return out
  for (const { key, value } of list as OtlpAttribute[]) {
    if (typeof key !== 'string' || typeof value !== 'object' || value === null) continue
    if (value.stringValue !== undefined) out[key] = String(value.stringValue)
    else if (value.intValue !== undefined) out[key] = Number(value.intValue)
    else if (value.boolValue !== undefined) out[key] = Boolean(value.boolValue)
    else if (value.doubleValue !== undefined) out[key] = Number(value.doubleValue)
  }
  return out
}

/** OTLP's nanoseconds (a decimal string, or a number) as epoch ms; 0 when absent. */
function nanosToMs(value: unknown): number {
  if (typeof value === 'number') return value / 1e6
  if (typeof value !== 'string' || !/^\d+$/.test(value)) return 0
  // Past 2^53 ns a Number loses the sub-µs digits: split off the milliseconds first.
  const ms = value.length > 6 ? Number(value.slice(0, -6)) : 0
  return ms + Number(value.slice(-6)) / 1e6
}

const HEX_ID = /^[0-9a-f]+$/i
const asArray = (value: unknown): unknown[] => (Array.isArray(value) ? value : [])

/**
 * The spans of one export body, or a one-line reason it is not an OTLP JSON trace export (not
 * JSON, no `resourceSpans` array, a span without hex trace and span ids or a name).
 */
export function parseOtlpTraces(text: string): { spans: CollectedSpan[] } | { error: string } {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch (err) {
    return { error: `not JSON (${(err as Error).message})` }
  }
  const resourceSpans = (body as { resourceSpans?: unknown } | null)?.resourceSpans
  if (!Array.isArray(resourceSpans)) {
    return { error: 'no resourceSpans array: not an OTLP trace export (JSON encoding)' }
  }
  const spans: CollectedSpan[] = []
  for (const resource of resourceSpans as Record<string, unknown>[]) {
    const resourceAttributes = attributesOf(
      (resource?.resource as { attributes?: unknown } | undefined)?.attributes,
    )
    const service = String(resourceAttributes['service.name'] ?? 'unknown')
    const instance = String(resourceAttributes['service.instance.id'] ?? '')
    for (const scope of asArray(resource?.scopeSpans) as { spans?: unknown }[]) {
      for (const raw of asArray(scope?.spans) as Record<string, unknown>[]) {
        const { traceId, spanId, parentSpanId, name } = raw ?? {}
        if (typeof traceId !== 'string' || !HEX_ID.test(traceId)) {
          return { error: 'a span without a hex traceId' }
        }
        if (typeof spanId !== 'string' || !HEX_ID.test(spanId)) {
          return { error: 'a span without a hex spanId' }
        }
        if (typeof name !== 'string') return { error: 'a span without a name' }
        spans.push({
          service,
          instance,
          traceId,
          spanId,
          parentSpanId: typeof parentSpanId === 'string' ? parentSpanId : '',
          name,
          kind: Number(raw.kind ?? 0),
          startMs: nanosToMs(raw.startTimeUnixNano),
          endMs: nanosToMs(raw.endTimeUnixNano),
          status: Number((raw.status as { code?: unknown } | undefined)?.code ?? 0),
          attributes: attributesOf(raw.attributes),
          events: (asArray(raw.events) as Record<string, unknown>[]).map((event) => ({
            name: String(event?.name ?? ''),
            timeMs: nanosToMs(event?.timeUnixNano),
            attributes: attributesOf(event?.attributes),
          })),
        })
      }
    }
  }
  return { spans }
}
