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
