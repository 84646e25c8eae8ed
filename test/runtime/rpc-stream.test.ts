import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { createEtcdClient } from '../../framework/registry/etcd-client.js'
import { instanceKey, RECORD_VERSION } from '../../framework/registry/record.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import kitchen from '../fixtures/app/services/kitchen/index.js'
import { startInProcess, withDependencies } from '../support/in-process.js'

// The RPC stream (runtime/rpc-stream.ts, client/rpc-stream-client.ts) against a real instance:
// the raw protocol, its refusals, the client's use of it, draining, and the fall-back to requests.

const NAMESPACE = 'rpc-stream'
let etcd: EtcdServer
let running: RunningInstance
let url: string
let requests = 0
let upgrades = 0

function startKitchen(): Promise<RunningInstance> {
  return startInProcess(kitchen, etcd.endpoint, NAMESPACE, { FRAMEWORK_MAX_BODY_BYTES: '4096' })
}

beforeAll(async () => {
  etcd = await EtcdServer.start()
  running = await startKitchen()
  running.server.on('request', () => {
    requests++
  })
  running.server.on('upgrade', () => {
    upgrades++
  })
  url = running.instance.url
})

afterAll(async () => {
  await running?.stop()
  await etcd?.dispose()
})

type Answer = [
  number,
  number,
  { result?: { data: unknown }; error?: { message: string; data: { code: string } } } | string,
]

/** A raw stream connection: upgrade, then frames in, answers out (parsed, in arrival order). */
class RawStream {
  readonly answers: Answer[] = []
  readonly socket: Socket
  #buffer = ''
  #upgraded = false
  head = ''

  private constructor(port: number) {
    this.socket = connect({ host: '127.0.0.1', port })
    this.socket.setEncoding('utf8')
    this.socket.on('data', (chunk: string) => {
      this.#buffer += chunk
      if (!this.#upgraded) {
        const end = this.#buffer.indexOf('\r\n\r\n')
        if (end === -1) return
        this.head = this.#buffer.slice(0, end)
        this.#buffer = this.#buffer.slice(end + 4)
        this.#upgraded = true
      }
      // Refused: what follows is a plain-text body, not frames.
      if (!this.head.startsWith('HTTP/1.1 101 ')) return
      let newline = this.#buffer.indexOf('\n')
      while (newline !== -1) {
        this.answers.push(JSON.parse(this.#buffer.slice(0, newline)) as Answer)
        this.#buffer = this.#buffer.slice(newline + 1)
        newline = this.#buffer.indexOf('\n')
      }
    })
  }

  static async open(path = '/_rpc/_stream', protocol = 'framework-rpc/1'): Promise<RawStream> {
    const stream = new RawStream(Number(new URL(url).port))
    await once(stream.socket, 'connect')
    stream.socket.write(
      `GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: ${protocol}\r\n\r\n`,
    )
    await waitUntil(() => stream.head !== '', 'the upgrade answer')
    return stream
  }

  send(text: string): void {
    this.socket.write(text)
  }

  async closed(): Promise<boolean> {
    if (this.socket.closed) return true
    return Promise.race([
      once(this.socket, 'close').then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 3_000)),
    ])
  }
}

async function waitUntil(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

describe('the RPC stream protocol', () => {
  it('answers every frame by id in completion order: successes and errors mixed, a slow call last', async () => {
    const stream = await RawStream.open()
    expect(stream.head).toMatch(/^HTTP\/1\.1 101 /)
    stream.send(
      [
        [1, 'sleep', 'query', { ms: 300 }, 5_000],
        [2, 'echo', 'query', { text: 'hi' }, 5_000],
        [3, 'echo', 'query', { text: 7 }, 5_000],
        [4, 'fail', 'query', null, 5_000],
        [5, 'nope', 'query', null, 5_000],
        [6, 'add', 'query', { n: 1 }, 5_000],
        [7, 'nested.ping', 'query', null, null],
      ]
        .map((frame) => `${JSON.stringify(frame)}\n`)
        .join(''),
    )
    await waitUntil(() => stream.answers.length === 7, 'seven answers')
    const byId = new Map(stream.answers.map((answer) => [answer[0], answer]))
    expect(byId.get(2)!.slice(1)).toEqual([200, { result: { data: 'hi' } }])
    expect(byId.get(3)![1]).toBe(400)
    expect(byId.get(4)![1]).toBe(500)
    expect(byId.get(5)![1]).toBe(404)
    expect(byId.get(6)![1]).toBe(405)
    expect(byId.get(7)!.slice(1)).toEqual([200, { result: { data: 'pong' } }])
    expect(stream.answers.at(-1)![0]).toBe(1)
    expect(byId.get(1)!.slice(1)).toEqual([200, { result: { data: 300 } }])
    stream.socket.end()
  })

  it('a malformed frame: answered on id 0 with 400 naming the frame format, connection closed, service unaffected', async () => {
    for (const bad of [
      '{not json\n',
      '["x","echo","query",{},1]\n',
      '[1,"echo","delete",{},1]\n',
    ]) {
      const stream = await RawStream.open()
      stream.send(bad)
      expect(await stream.closed(), bad).toBe(true)
      expect(stream.answers).toHaveLength(1)
      const [id, status, body] = stream.answers[0]!
      expect([id, status]).toEqual([0, 400])
      expect(JSON.stringify(body)).toMatch(/RPC stream frame/)
    }
    const stream = await RawStream.open()
    stream.send(`${JSON.stringify([1, 'echo', 'query', { text: 'still here' }, 1_000])}\n`)
    await waitUntil(() => stream.answers.length === 1, 'an answer')
    expect(stream.answers[0]).toEqual([1, 200, { result: { data: 'still here' } }])
    stream.socket.end()
  })

  it('a frame over the body limit: 413 naming FRAMEWORK_MAX_BODY_BYTES, connection closed', async () => {
    const stream = await RawStream.open()
    // No newline: the limit must hold for a frame that never ends, too.
    stream.send(`[1,"echo","query",{"text":"${'x'.repeat(8_000)}`)
    expect(await stream.closed()).toBe(true)
    expect(stream.answers[0]?.[1]).toBe(413)
    expect(JSON.stringify(stream.answers[0]?.[2])).toContain('FRAMEWORK_MAX_BODY_BYTES')
  })

  it('an upgrade to anything else is refused with 400', async () => {
    for (const [path, protocol] of [
      ['/trpc', 'websocket'],
      ['/_rpc/_stream', 'websocket'],
    ] as const) {
      const stream = await RawStream.open(path, protocol)
      expect(stream.head).toMatch(/^HTTP\/1\.1 400 /)
      expect(await stream.closed()).toBe(true)
    }
  })
})

describe('ctx.deps over the RPC stream', () => {
  it('calls go over one upgraded connection, not requests; 500 concurrent calls all answered correctly', async () => {
    await withDependencies(etcd.endpoint, NAMESPACE, ['kitchen'], async (deps) => {
      const client = deps.clients.get('kitchen')!
      await client.call('echo', { text: 'warm' })
      const requestsBefore = requests
      const upgradesBefore = upgrades
      const answers = await Promise.all(
        Array.from({ length: 500 }, (_, i) => client.call('echo', { text: `t${i}` })),
      )
      expect(answers).toEqual(Array.from({ length: 500 }, (_, i) => `t${i}`))
      await expect(client.call('echo', { text: 42 })).rejects.toThrow(/BAD_REQUEST|invalid input/i)
      expect(requests - requestsBefore).toBe(0)
      expect(upgrades - upgradesBefore).toBe(0)
    })
  })

  it('SIGTERM-style stop while 300 mutations are in flight: goaway, every mutation answered exactly once, none failed', async () => {
    const draining = await startKitchen()
    try {
      await withDependencies(etcd.endpoint, NAMESPACE, ['kitchen'], async (deps) => {
        const client = deps.clients.get('kitchen')!
        await client.call('echo', { text: 'warm' })
        // Both instances run in this process and share the kitchen's running total.
        const before = (await client.call('add', { n: 0 })) as number
        // Slow queries keep the stream busy while the instance drains; mutations go to whichever
        // instance the balancer picks: both are fine as long as none fails.
        const slow = Array.from({ length: 20 }, () => client.call('sleep', { ms: 300 }))
        const mutations = Array.from({ length: 300 }, () => client.call('add', { n: 1 }))
        const stopping = draining.stop()
        const results = await Promise.allSettled([...slow, ...mutations])
        await stopping
        const failed = results.filter((result) => result.status === 'rejected')
        expect(failed.map((result) => String((result as PromiseRejectedResult).reason))).toEqual([])
        const totals = results
          .slice(slow.length)
          .map((result) => (result as PromiseFulfilledResult<number>).value)
        // Exactly once: 300 distinct running totals, and the total grew by exactly 300.
        expect(new Set(totals).size).toBe(300)
        expect(await client.call('add', { n: 0 })).toBe(before + 300)
      })
    } finally {
      await draining.stop()
    }
  })
})

describe('a service that does not speak the stream', () => {
  let plain: Server
  let upgradeRequests = 0
  let calls = 0

  beforeAll(async () => {
    // Requests only, as a peer in another language would be: single calls at /_rpc/<path> and
    // batches at /_rpc/_batch (NDJSON answers), tRPC's answer shape.
    plain = createServer(async (req, res) => {
      if (req.url === '/_rpc/_stream') {
        upgradeRequests++
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"no"}')
        return
      }
      if (req.url === '/_rpc/_batch') {
        let body = ''
        for await (const chunk of req) body += chunk
        const items = JSON.parse(body) as [string, string, { text: string }][]
        calls += items.length
        res.writeHead(200, { 'content-type': 'application/x-ndjson' })
        res.end(
          items
            .map(
              ([, , input], i) =>
                `${JSON.stringify([i, 200, { result: { data: `plain:${input.text}` } }])}\n`,
            )
            .join(''),
        )
        return
      }
      calls++
      const input = JSON.parse(new URL(req.url!, 'http://x').searchParams.get('input')!)
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ result: { data: `plain:${input.text}` } }))
    })
    plain.listen(0, '127.0.0.1')
    await once(plain, 'listening')
    const { port } = plain.address() as { port: number }
    const client = createEtcdClient([etcd.endpoint])
    const id = 'plain-1'
    await client.put(instanceKey(NAMESPACE, 'plain', id)).value(
      JSON.stringify({
        v: RECORD_VERSION,
        role: 'plain',
        id,
        url: `http://127.0.0.1:${port}`,
        version: '1.0.0',
        contract: 'c',
        procedures: { echo: 'query' },
        load: { inflight: 0, eventLoopDelayMs: 0, cpu: 0, rss: 1 },
        startedAt: new Date().toISOString(),
        host: '127.0.0.1',
        pid: process.pid,
      }),
    )
    client.close()
  })

  afterAll(async () => {
    plain?.closeAllConnections()
    plain?.close()
  })

  it('is called with requests after one refused upgrade; no call is lost on the way', async () => {
    await withDependencies(etcd.endpoint, NAMESPACE, ['plain'], async (deps) => {
      const client = deps.clients.get('plain')!
      await deps.waitForInstances(5_000)
      // Made before the upgrade is answered: they wait for it, then go as requests.
      const first = await Promise.all(
        Array.from({ length: 5 }, (_, i) => client.call('echo', { text: `a${i}` })),
      )
      expect(first).toEqual(Array.from({ length: 5 }, (_, i) => `plain:a${i}`))
      const second = await client.call('echo', { text: 'b' })
      expect(second).toBe('plain:b')
      expect(upgradeRequests).toBe(1)
      expect(calls).toBe(6)
    })
  })
})
