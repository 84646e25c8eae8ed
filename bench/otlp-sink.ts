/**
 * An OTLP/HTTP receiver for benchmarks, in its own process (its work must not land on the
 * measured caller): accepts `POST /v1/traces` (JSON), counts the spans per `service.name`,
 * answers 200 `{}`. `GET /count` → `{ "<service.name>": N, … }`, so a benchmark can show what its
 * traced variants exported.
 */
import { createServer } from 'node:http'
import { parseOtlpTraces } from '../framework/telemetry/otlp-json.js'

const spans: Record<string, number> = {}
const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/count') {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(spans))
    return
  }
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk))
  req.on('end', () => {
    // The collector's reader of the export format: one home for it.
    const parsed = parseOtlpTraces(Buffer.concat(chunks).toString('utf8'))
    if ('error' in parsed) {
      res.writeHead(400, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: parsed.error }))
      return
    }
    for (const span of parsed.spans) spans[span.service] = (spans[span.service] ?? 0) + 1
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end('{}')
  })
})
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number }
  process.stdout.write(`${JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${port}` })}\n`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
