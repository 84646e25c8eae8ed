/**
 * An OTLP/HTTP receiver for benchmarks, in its own process (its work must not land on the
 * measured caller): accepts `POST /v1/traces` (JSON), counts the spans per `service.name`,
 * answers 200 `{}`. `GET /count` → `{ "<service.name>": N, … }`, so a benchmark can show what its
 * traced variants exported.
 */
import { createServer } from 'node:http'

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
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans?: {
          resource?: { attributes?: { key: string; value?: { stringValue?: string } }[] }
          scopeSpans?: { spans?: unknown[] }[]
        }[]
      }
      for (const { resource, scopeSpans } of body.resourceSpans ?? []) {
        const name =
          resource?.attributes?.find(({ key }) => key === 'service.name')?.value?.stringValue ??
          'unknown'
        for (const scope of scopeSpans ?? []) {
          spans[name] = (spans[name] ?? 0) + (scope.spans?.length ?? 0)
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{}')
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' })
      res.end('{"error":"not OTLP JSON"}')
    }
  })
})
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number }
  process.stdout.write(`${JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${port}` })}\n`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
