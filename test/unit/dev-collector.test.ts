import { request } from 'node:http'
import { gzipSync } from 'node:zlib'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DevCollector } from '../../framework/telemetry/dev-collector.js'

// framework dev's trace collector on a loopback port in this process: what the OpenTelemetry
// exporter sends is read, and bad bodies are refused with a status while it stays up.

const LIMIT = 64 * 1024
let collector: DevCollector

beforeAll(async () => {
  collector = await DevCollector.start({ maxBodyBytes: LIMIT, maxTraces: 50 })
})
afterAll(async () => {
  await collector?.close()
})

/** POSTs `body` to the collector; the status and the answer's text. */
function post(
  body: Buffer | string,
  headers: Record<string, string> = { 'content-type': 'application/json' },
  path = '/v1/traces',
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${collector.endpoint}${path}`, { method: 'POST', headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        text += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

let sequence = 0
/** A well-formed export of one span in a new trace; its trace id. */
function goodExport(): { body: string; traceId: string } {
  sequence++
  const traceId = sequence.toString(16).padStart(32, '0')
  const body = JSON.stringify({
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'cache' } }] },
        scopeSpans: [
          {
            spans: [
              {
                traceId,
                spanId: '00000000000000aa',
                name: 'cache/get',
                kind: 2,
                startTimeUnixNano: '1764770000000000000',
                endTimeUnixNano: '1764770000002500000',
                attributes: [{ key: 'framework.procedure', value: { stringValue: 'get' } }],
              },
            ],
          },
        ],
      },
    ],
  })
  return { body, traceId }
}

describe('dev collector', () => {
  it('reads what @opentelemetry/exporter-trace-otlp-http sends: names, parents, times, service', async () => {
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'api', 'service.instance.id': 'api-1' }),
      spanProcessors: [
        new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${collector.endpoint}/v1/traces` })),
      ],
    })
    const tracer = provider.getTracer('test')
    const parent = tracer.startSpan('api/get', { kind: 1 })
    const { traceId, spanId } = parent.spanContext()
    parent.end()
    await provider.forceFlush()
    await provider.shutdown()
    const [span] = collector.store.get(traceId) ?? []
    expect(span).toMatchObject({
      service: 'api',
      instance: 'api-1',
      traceId,
      spanId,
      parentSpanId: '',
      name: 'api/get',
      kind: 2,
    })
    // Times in epoch ms, near now and in order.
    expect(Math.abs(span!.startMs - Date.now())).toBeLessThan(60_000)
    expect(span!.endMs).toBeGreaterThanOrEqual(span!.startMs)
  })

  it('a body over the limit gets 413 (declared or streamed, gzipped or not); a good body is taken after', async () => {
    const refusedBefore = collector.refused
    const over = await post(Buffer.alloc(LIMIT + 1, 'x'))
    expect(over.status).toBe(413)
    expect(JSON.parse(over.text).message).toMatch(/over the collector's limit of 65536 bytes/)
    // Chunked: no content-length, the limit is found while reading.
    const chunked = await post(Buffer.alloc(LIMIT * 2, 'x'), {
      'content-type': 'application/json',
      'transfer-encoding': 'chunked',
    })
    expect(chunked.status).toBe(413)
    // Small on the wire, over the limit once inflated.
    const bomb = await post(gzipSync(Buffer.alloc(LIMIT * 8, ' ')), {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    })
    expect(bomb.status).toBe(413)
    expect(collector.refused).toBe(refusedBefore + 3)

    const good = goodExport()
    expect((await post(good.body)).status).toBe(200)
    expect(collector.store.get(good.traceId)).toHaveLength(1)
    const gzipped = goodExport()
    const answer = await post(gzipSync(gzipped.body), {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    })
    expect(answer.status).toBe(200)
    expect(collector.store.summary(gzipped.traceId)).toMatchObject({
      name: 'cache cache/get',
      services: ['cache'],
      spans: 1,
      durationMs: 2.5,
    })
  })

  it('a malformed body gets 400 with the reason; protobuf 415; another path 404', async () => {
    const notJson = await post('{"resourceSpans": [')
    expect(notJson.status).toBe(400)
    expect(JSON.parse(notJson.text).message).toMatch(/^malformed OTLP trace export: not JSON/)
    const wrongShape = await post('{"resourceSpans": 7}')
    expect(wrongShape.status).toBe(400)
    expect(JSON.parse(wrongShape.text).message).toMatch(/no resourceSpans array/)
    const badId = await post(
      JSON.stringify({
        resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: 'zz', name: 'x' }] }] }],
      }),
    )
    expect(badId.status).toBe(400)
    expect(JSON.parse(badId.text).message).toMatch(/hex traceId/)
    const protobuf = await post(Buffer.from([0x0a, 0x00]), {
      'content-type': 'application/x-protobuf',
    })
    expect(protobuf.status).toBe(415)
    expect(JSON.parse(protobuf.text).message).toMatch(/OTEL_EXPORTER_OTLP_PROTOCOL=http\/json/)
    expect((await post(goodExport().body, undefined, '/v1/metrics')).status).toBe(404)
    expect((await post(goodExport().body)).status).toBe(200)
  })

  it('keeps the last maxTraces traces only, newest first', async () => {
    const sent: string[] = []
    for (let i = 0; i < 80; i++) {
      const good = goodExport()
      sent.push(good.traceId)
      expect((await post(good.body)).status).toBe(200)
    }
    expect(collector.store.size).toBe(50)
    const held = collector.store.list().map((trace) => trace.traceId)
    expect(new Set(held)).toEqual(new Set(sent.slice(-50)))
    expect(collector.store.get(sent[0]!)).toBeUndefined()
  })
})
