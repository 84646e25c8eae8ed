import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { createEtcdClient } from '../../framework/registry/etcd-client.js'
import { instanceKey } from '../../framework/registry/record.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import kitchen from '../fixtures/app/services/kitchen/index.js'
import { startInProcess, withDependencies } from '../support/in-process.js'
import { sampleRecord } from '../support/phone-book.js'
import { RawStream, waitUntil } from '../support/raw-stream.js'
import { waitFor } from '../support/wait.js'

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

describe('the RPC stream protocol', () => {
  it('answers every frame by id in completion order: successes and errors mixed, a slow call last', async () => {
    const stream = await RawStream.open(url)
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

  it('a malformed frame with a readable id: answered 400 on that id, the connection and its other calls go on', async () => {
    const stream = await RawStream.open(url)
    stream.send(
      `${[
        '[1,"sleep","query",{"ms":200},5000]',
        '[2,"echo","delete",{},1]',
        '[3,"echo","query",{"text":',
        '[4,"echo","query",{"text":"after"},1000]',
      ].join('\n')}\n`,
    )
    await waitUntil(() => stream.answers.length === 4, 'four answers')
    const byId = new Map(stream.answers.map((answer) => [answer[0], answer]))
    expect(byId.get(2)![1]).toBe(400)
    expect(JSON.stringify(byId.get(2)![2])).toMatch(/RPC stream frame is \[id > 0/)
    expect(byId.get(3)![1]).toBe(400)
    expect(JSON.stringify(byId.get(3)![2])).toMatch(/not valid JSON/)
    expect(byId.get(4)!.slice(1)).toEqual([200, { result: { data: 'after' } }])
    expect(byId.get(1)!.slice(1)).toEqual([200, { result: { data: 200 } }])
    expect(stream.socket.closed).toBe(false)
    stream.socket.end()
  })

  it('a frame without a readable id: answered on id 0 with 400, connection closed, service unaffected', async () => {
    for (const bad of ['{not json\n', '["x","echo","query",{},1]\n', '[0,"echo","query",{},1]\n']) {
      const stream = await RawStream.open(url)
      stream.send(bad)
      expect(await stream.closed(), bad).toBe(true)
      expect(stream.answers).toHaveLength(1)
      const [id, status, body] = stream.answers[0]!
      expect([id, status]).toEqual([0, 400])
      expect(JSON.stringify(body)).toMatch(/RPC stream frame/)
    }
    const stream = await RawStream.open(url)
    stream.send(`${JSON.stringify([1, 'echo', 'query', { text: 'still here' }, 1_000])}\n`)
    await waitUntil(() => stream.answers.length === 1, 'an answer')
    expect(stream.answers[0]).toEqual([1, 200, { result: { data: 'still here' } }])
    stream.socket.end()
  })

  it('a frame over the body limit, even one still unfinished: 413 on its id naming FRAMEWORK_MAX_BODY_BYTES, its bytes dropped, the connection goes on', async () => {
    const stream = await RawStream.open(url)
    // Sent in pieces, no newline yet: the limit holds for a frame that has not ended.
    stream.send(`[1,"echo","query",{"text":"${'x'.repeat(3_000)}`)
    stream.send('x'.repeat(3_000))
    await new Promise((resolve) => setTimeout(resolve, 50))
    stream.send(`${'x'.repeat(3_000)}"},1000]\n[2,"echo","query",{"text":"next"},1000]\n`)
    await waitUntil(() => stream.answers.length === 2, 'two answers')
    expect(stream.answers[0]![0]).toBe(1)
    expect(stream.answers[0]![1]).toBe(413)
    expect(JSON.stringify(stream.answers[0]![2])).toContain('FRAMEWORK_MAX_BODY_BYTES')
    expect(stream.answers[1]).toEqual([2, 200, { result: { data: 'next' } }])
    stream.socket.end()
    // Without a readable id there is no call to answer: 413 on id 0, connection closed.
    const unreadable = await RawStream.open(url)
    unreadable.send(`{"junk":"${'x'.repeat(8_000)}`)
    expect(await unreadable.closed()).toBe(true)
    expect(unreadable.answers[0]?.slice(0, 2)).toEqual([0, 413])
  })

  it('a procedure answer JSON cannot encode (a BigInt): 500 on its id, the service stays up', async () => {
    const stream = await RawStream.open(url)
    stream.send('[1,"big","query",null,1000]\n[2,"echo","query",{"text":"ok"},1000]\n')
    await waitUntil(() => stream.answers.length === 2, 'two answers')
    const byId = new Map(stream.answers.map((answer) => [answer[0], answer]))
    expect(byId.get(1)![1]).toBe(500)
    expect(byId.get(2)!.slice(1)).toEqual([200, { result: { data: 'ok' } }])
    // The batch form too.
    const batch = await fetch(`${url}/_rpc/_batch`, {
      method: 'POST',
      body: JSON.stringify([['big', 'query', null, 1000]]),
    })
    expect(await batch.text()).toMatch(/^\[0,500,/)
    expect((await fetch(`${url}/healthz`)).status).toBe(200)
    stream.socket.end()
  })

  it('a request carrying some other Upgrade (h2c, websocket) is served as plain HTTP/1.1 (GET), refused with 400 otherwise', async () => {
    const input = encodeURIComponent(JSON.stringify({ text: 'h2c' }))
    const echoesBefore = running.served.snapshot().echo ?? 0
    const served = await RawStream.open(url, `/trpc/echo?input=${input}`, 'h2c')
    expect(served.head).toMatch(/^HTTP\/1\.1 200 /)
    expect(await served.closed()).toBe(true)
    // Its end was seen like any request's ('close'): counted as served, no longer in flight.
    await waitFor(
      'the h2c call counted',
      () => (running.served.snapshot().echo ?? 0) === echoesBefore + 1,
    )
    const websocket = await RawStream.open(url, '/_rpc/_stream', 'websocket')
    expect(websocket.head).not.toMatch(/^HTTP\/1\.1 101 /)
    expect(await websocket.closed()).toBe(true)
    const post = await RawStream.open(url, '/trpc/add', 'h2c', 'POST')
    expect(post.head).toMatch(/^HTTP\/1\.1 400 /)
    expect(await post.closed()).toBe(true)
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
})

/** Puts a phone book record for a test server of `role` listening on `port` (query `echo`). */
async function putRecord(role: string, port: number): Promise<void> {
  const client = createEtcdClient([etcd.endpoint])
  const id = `${role}-1`
  try {
    await client
      .put(instanceKey(NAMESPACE, role, id))
      .value(JSON.stringify(sampleRecord(role, id, `http://127.0.0.1:${port}`, { echo: 'query' })))
  } finally {
    client.close()
  }
}

/** Answers `GET /_rpc/echo?input=` as tRPC would: `{ result: { data: '<prefix>:<text>' } }`. */
function echoServer(prefix: string): Server {
  return createServer((req, res) => {
    const input = JSON.parse(new URL(req.url!, 'http://x').searchParams.get('input') ?? '{}')
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ result: { data: `${prefix}:${input.text}` } }))
  })
}

describe('streams that fail without saying so', () => {
  const servers: Server[] = []
  afterAll(() => {
    for (const server of servers) {
      server.closeAllConnections()
      server.close()
    }
  })

  async function listen(server: Server): Promise<number> {
    servers.push(server)
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    return (server.address() as { port: number }).port
  }

  it('a peer that drops the upgrade without an answer is called with requests', async () => {
    const server = echoServer('dropper')
    let dropped = 0
    server.on('upgrade', (_req, socket: Socket) => {
      dropped++
      socket.destroy()
    })
    await putRecord('dropper', await listen(server))
    await withDependencies(etcd.endpoint, NAMESPACE, ['dropper'], async (deps) => {
      await deps.waitForInstances(5_000)
      const client = deps.clients.get('dropper')!
      expect(await client.call('echo', { text: 'a' })).toBe('dropper:a')
      expect(await client.call('echo', { text: 'b' })).toBe('dropper:b')
      expect(dropped).toBe(1)
    })
  })

  it('a reset during the upgrade is a failure, not an answer: the next call tries the stream again', async () => {
    const server = echoServer('resetter')
    let upgrades = 0
    let requests = 0
    server.on('request', () => requests++)
    server.on('upgrade', (_req, socket: Socket) => {
      if (++upgrades === 1) {
        // A reset before the upgrade is answered (a crash, a busy proxy): not "no stream here".
        socket.resetAndDestroy()
        return
      }
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nupgrade: framework-rpc/1\r\nconnection: upgrade\r\n\r\n',
      )
      let buffered = ''
      socket.on('data', (chunk: Buffer) => {
        buffered += chunk.toString()
        for (let at = buffered.indexOf('\n'); at !== -1; at = buffered.indexOf('\n')) {
          const [id, , , input] = JSON.parse(buffered.slice(0, at)) as [
            number,
            string,
            string,
            { text: string },
          ]
          buffered = buffered.slice(at + 1)
          socket.write(
            `${JSON.stringify([id, 200, { result: { data: `resetter:${input.text}` } }])}\n`,
          )
        }
      })
    })
    await putRecord('resetter', await listen(server))
    await withDependencies(etcd.endpoint, NAMESPACE, ['resetter'], async (deps) => {
      await deps.waitForInstances(5_000)
      const client = deps.clients.get('resetter')!
      expect(await client.call('echo', { text: 'a' })).toBe('resetter:a')
      expect(await client.call('echo', { text: 'b' })).toBe('resetter:b')
      // Still on the stream: the first call went again on a new upgrade, no plain request.
      expect(upgrades).toBe(2)
      expect(requests).toBe(0)
    })
  })

  it('a stream that goes silent (black-holed peer): a timed-out call sends a probe, no answer drops the connection, the next call reconnects', async () => {
    const server = echoServer('mute')
    const sockets: Socket[] = []
    server.on('upgrade', (_req, socket: Socket) => {
      // Accepts the stream, then never answers a frame: as if the network ate everything.
      sockets.push(socket)
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nupgrade: framework-rpc/1\r\nconnection: upgrade\r\n\r\n',
      )
      socket.on('data', () => undefined)
    })
    await putRecord('mute', await listen(server))
    await withDependencies(etcd.endpoint, NAMESPACE, ['mute'], async (deps) => {
      await deps.waitForInstances(5_000)
      const client = deps.clients.get('mute')!
      await expect(client.call('echo', { text: 'lost' }, { timeoutMs: 300 })).rejects.toThrow(
        /no answer within the deadline/,
      )
      expect(sockets).toHaveLength(1)
      // The probe gets no answer either: within its 2 s the client drops the connection.
      await waitUntil(
        () => sockets[0]!.readableEnded,
        'the client to drop the silent connection',
        4_000,
      )
      await expect(client.call('echo', { text: 'again' }, { timeoutMs: 300 })).rejects.toThrow()
      expect(sockets).toHaveLength(2)
    })
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
    await putRecord('plain', (plain.address() as { port: number }).port)
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
