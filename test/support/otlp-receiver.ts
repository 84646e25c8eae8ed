import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

/** One span as an OTLP/HTTP JSON export carried it, flattened. */
export interface ReceivedSpan {
  /** The exporting process's `service.name`. */
  service: string
  traceId: string
  spanId: string
  /** Empty for a trace's root. */
  parentSpanId: string
  name: string
  /** OTLP's SpanKind: 2 SERVER, 3 CLIENT. */
  kind: number
  attributes: Record<string, string | number | boolean>
  events: { name: string; attributes: Record<string, string | number | boolean> }[]
}

export const SERVER = 2
export const CLIENT = 3

/** Largest export body accepted (a bigger one gets 413). */
const MAX_BODY_BYTES = 16 * 1024 * 1024

type OtlpValue = {
  stringValue?: string
  intValue?: string | number
  boolValue?: boolean
  doubleValue?: number
}
type OtlpAttribute = { key: string; value: OtlpValue }

function attributesOf(
  list: OtlpAttribute[] | undefined,
): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {}
  for (const { key, value } of list ?? []) {
    if (value.stringValue !== undefined) out[key] = value.stringValue
    else if (value.intValue !== undefined) out[key] = Number(value.intValue)
    else if (value.boolValue !== undefined) out[key] = value.boolValue
    else if (value.doubleValue !== undefined) out[key] = value.doubleValue
  }
  return out
}

/**
 * An OTLP/HTTP trace receiver on 127.0.0.1 (JSON encoding, what
 * @opentelemetry/exporter-trace-otlp-http sends): `POST /v1/traces`, spans kept in arrival order.
 */
export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = []
  /** Export requests refused (not JSON, wrong path, too large). */
  refused = 0

  private constructor(
    private readonly server: Server,
    /** What `OTEL_EXPORTER_OTLP_ENDPOINT` should be. */
    readonly endpoint: string,
  ) {}

  static async start(): Promise<OtlpReceiver> {
    let receiver: OtlpReceiver | undefined
    const server = createServer((req, res) => {
      const chunks: Buffer[] = []
      let size = 0
      req.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size <= MAX_BODY_BYTES) chunks.push(chunk)
      })
      req.on('end', () => {
        const ok = req.method === 'POST' && req.url === '/v1/traces' && size <= MAX_BODY_BYTES
        if (!ok || !receiver?.accept(Buffer.concat(chunks).toString('utf8'))) {
          if (receiver) receiver.refused++
          res.writeHead(size > MAX_BODY_BYTES ? 413 : 400).end()
          return
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
      })
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo
    receiver = new OtlpReceiver(server, `http://127.0.0.1:${port}`)
    return receiver
  }

  /** Takes one export request's body; false when it is not an OTLP JSON trace export. */
  accept(text: string): boolean {
    let body: {
      resourceSpans?: {
        resource?: { attributes?: OtlpAttribute[] }
        scopeSpans?: {
          spans?: {
            traceId: string
            spanId: string
            parentSpanId?: string
            name: string
            kind: number
            attributes?: OtlpAttribute[]
            events?: { name: string; attributes?: OtlpAttribute[] }[]
          }[]
        }[]
      }[]
    }
    try {
      body = JSON.parse(text)
    } catch {
      return false
    }
    if (!Array.isArray(body.resourceSpans)) return false
    for (const resourceSpans of body.resourceSpans) {
      const service = String(attributesOf(resourceSpans.resource?.attributes)['service.name'])
      for (const scope of resourceSpans.scopeSpans ?? []) {
        for (const span of scope.spans ?? []) {
          this.spans.push({
            service,
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: span.parentSpanId ?? '',
            name: span.name,
            kind: span.kind,
            attributes: attributesOf(span.attributes),
            events: (span.events ?? []).map((event) => ({
              name: event.name,
              attributes: attributesOf(event.attributes),
            })),
          })
        }
      }
    }
    return true
  }

  /** The spans of one trace. */
  trace(traceId: string): ReceivedSpan[] {
    return this.spans.filter((span) => span.traceId === traceId)
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise((resolve) => this.server.close(resolve))
  }
}
