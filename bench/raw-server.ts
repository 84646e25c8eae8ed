/** Baseline server: raw node:http answering tRPC's success shape for any GET, in its own process. */
import { createServer } from 'node:http'

const body = JSON.stringify({ result: { data: { value: 'v', hit: true, instance: 'raw' } } })
const server = createServer((req, res) => {
  // Drain the request, answer the same bytes a cache hit would.
  req.resume()
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  })
  res.end(body)
})
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number }
  process.stdout.write(`${JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${port}` })}\n`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
