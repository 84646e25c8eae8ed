import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { HttpTransport } from '../../framework/client/http-transport.js'

let server: Server | undefined
let transport: HttpTransport | undefined
afterEach(async () => {
  await transport?.close()
  server?.closeAllConnections()
  server?.close()
})

describe('batch answers over requests', () => {
  it('keeps a multi-byte character whole when the answer splits it between two chunks', async () => {
    const text = 'é€😀 — ünïcödé'
    server = createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        const bytes = Buffer.concat([
          Buffer.from(`[0,200,{"result":{"data":${JSON.stringify(text)}}}]\n`),
          Buffer.from(`[1,200,{"result":{"data":${JSON.stringify(text)}}}]\n`),
        ])
        // Split inside the euro sign's three bytes, then inside the emoji's four.
        const cuts = [bytes.indexOf(Buffer.from('€')) + 1, bytes.lastIndexOf(Buffer.from('😀')) + 2]
        res.writeHead(200, { 'content-type': 'application/x-ndjson' })
        res.write(bytes.subarray(0, cuts[0]))
        setTimeout(() => {
          res.write(bytes.subarray(cuts[0], cuts[1]))
          setTimeout(() => res.end(bytes.subarray(cuts[1])), 20)
        }, 20)
      })
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    transport = new HttpTransport({ stream: false })
    // Two calls in the same tick travel as one batch request.
    const answers = await Promise.all([
      transport.send(url, 'query', 'get', { n: 0 }, 5_000, 5_000),
      transport.send(url, 'query', 'get', { n: 1 }, 5_000, 5_000),
    ])
    expect(answers.map((answer) => answer.body)).toEqual([
      { result: { data: text } },
      { result: { data: text } },
    ])
  })
})

describe('batch requests and call tokens', () => {
  it('sends calls signed with different tokens apart: each request carries its calls’ own token', async () => {
    const seen: { token: string | undefined; batch: boolean; calls: number }[] = []
    server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        const batch = req.url?.includes('_batch') === true
        const items = batch ? (JSON.parse(Buffer.concat(chunks).toString()) as unknown[]) : [null]
        seen.push({
          token: req.headers['x-framework-token'] as string | undefined,
          batch,
          calls: items.length,
        })
        if (!batch) {
          res.writeHead(200, { 'content-type': 'application/json' })
          res.end('{"result":{"data":"one"}}')
          return
        }
        res.writeHead(200, { 'content-type': 'application/x-ndjson' })
        res.end(items.map((_, i) => `[${i},200,{"result":{"data":"many"}}]\n`).join(''))
      })
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    transport = new HttpTransport({ stream: false })
    const send = (n: number, token: string) =>
      transport!.send(url, 'query', 'get', { n }, 5_000, 5_000, undefined, undefined, token)
    // Same tick: two calls with token A, one with token B.
    const answers = await Promise.all([send(0, 'A'), send(1, 'B'), send(2, 'A')])
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200])
    expect(seen.sort((a, b) => (a.token ?? '').localeCompare(b.token ?? ''))).toEqual([
      { token: 'A', batch: true, calls: 2 },
      { token: 'B', batch: false, calls: 1 },
    ])
  })
})
