/**
 * The floor of a sequential call on this machine, in its own process: a bare `node:net` server
 * that answers each newline-delimited JSON frame with the RPC stream's answer bytes for a cache
 * hit, written at once. No validation, no procedure, no framework: what is left of a call's
 * latency is two processes waking up and the socket's syscalls (call-overhead's "node:net echo").
 */
import { createServer } from 'node:net'

const BODY = JSON.stringify({ result: { data: { value: 'v', hit: true, instance: 'echo' } } })
const server = createServer({ noDelay: true }, (socket) => {
  socket.setEncoding('utf8')
  let buffer = ''
  socket.on('data', (chunk: string) => {
    buffer += chunk
    let out = ''
    let newline = buffer.indexOf('\n')
    while (newline !== -1) {
      const [id] = JSON.parse(buffer.slice(0, newline)) as [number]
      out += `[${id},200,${BODY}]\n`
      buffer = buffer.slice(newline + 1)
      newline = buffer.indexOf('\n')
    }
    if (out) socket.write(out)
  })
  socket.on('error', () => socket.destroy())
})
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number }
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port })}\n`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
