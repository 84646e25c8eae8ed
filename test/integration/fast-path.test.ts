import type { IncomingMessage } from 'node:http'
import { createTRPCClient, httpBatchLink, httpLink } from '@trpc/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { MAX_CLIENT_BATCH } from '../../framework/client/http-transport.js'
import { DEFAULT_MAX_BATCH_SIZE } from '../../framework/protocol/batch.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import kitchen from '../fixtures/app/services/kitchen/index.js'
import { startInProcess, withDependencies } from '../support/in-process.js'
import { waitFor } from '../support/wait.js'

const NAMESPACE = 'fast-path'
let etcd: EtcdServer
let running: RunningInstance
let url: string
let requests = 0

beforeAll(async () => {
  etcd = await EtcdServer.start()
  running = await startInProcess(kitchen, etcd.endpoint, NAMESPACE, {
    FRAMEWORK_MAX_BATCH: '8',
    FRAMEWORK_MAX_BODY_BYTES: '4096',
  })
  running.server.on('request', () => {
    requests++
  })
  url = running.instance.url
})

afterAll(async () => {
  await running?.stop()
  await etcd?.dispose()
})

type Line = [
  number,
  number,
  { result?: { data: unknown }; error?: { message: string; data: { code: string } } },
]

async function batch(
  items: unknown,
): Promise<{ status: number; lines: Line[]; arrivals: number[]; text: string }> {
  const started = performance.now()
  const response = await fetch(`${url}/_rpc/_batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(items),
  })
  const lines: Line[] = []
  const arrivals: number[] = []
  let text = ''
  const decoder = new TextDecoder()
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    text += decoder.decode(chunk, { stream: true })
    let newline = text.indexOf('\n')
    while (newline !== -1 && response.status === 200) {
      lines.push(JSON.parse(text.slice(0, newline)) as Line)
      arrivals.push(performance.now() - started)
      text = text.slice(newline + 1)
      newline = text.indexOf('\n')
    }
  }
  return { status: response.status, lines, arrivals, text }
}

describe('fast path: single calls speak tRPC', () => {
  it('answers like the standard adapter, same bodies and statuses', async () => {
    const input = encodeURIComponent(JSON.stringify({ text: 'hi' }))
    for (const prefix of ['/_rpc', '/trpc']) {
      const ok = await fetch(`${url}${prefix}/echo?input=${input}`)
      expect(ok.status).toBe(200)
      expect(await ok.json()).toEqual({ result: { data: 'hi' } })
      const bad = await fetch(`${url}${prefix}/echo?input=${encodeURIComponent('{"text":1}')}`)
      expect(bad.status).toBe(400)
      const badBody = (await bad.json()) as {
        error: { data: { code: string; issues: { path: string[] }[] } }
      }
      expect(badBody.error.data.code).toBe('BAD_REQUEST')
      expect(badBody.error.data.issues[0]?.path).toEqual(['text'])
      const forbidden = await fetch(`${url}${prefix}/forbidden`)
      expect(forbidden.status).toBe(403)
      const missing = await fetch(`${url}${prefix}/nope`)
      expect(missing.status).toBe(404)
      const nested = await fetch(`${url}${prefix}/nested.ping`)
      expect(await nested.json()).toEqual({ result: { data: 'pong' } })
    }
  })

  it('maps bad requests: malformed JSON 400, oversized 413, wrong method 405', async () => {
    expect((await fetch(`${url}/_rpc/echo?input=%7Bnot`)).status).toBe(400)
    const big = await fetch(`${url}/_rpc/add`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ n: 1, pad: 'x'.repeat(5000) }),
    })
    expect(big.status).toBe(413)
    expect(((await big.json()) as { error: { message: string } }).error.message).toContain(
      'FRAMEWORK_MAX_BODY_BYTES',
    )
    expect((await fetch(`${url}/_rpc/add`)).status).toBe(405)
    const malformed = await fetch(`${url}/_rpc/add`, { method: 'POST', body: '{"n":' })
    expect(malformed.status).toBe(400)
    expect((await fetch(`${url}/healthz`)).status).toBe(200)
  })
})

describe('fast path: batches', () => {
  it('answers every item, successes and errors mixed, each with its own status', async () => {
    const { status, lines } = await batch([
      ['echo', 'query', { text: 'a' }, 1000],
      ['fail', 'query', undefined, 1000],
      ['echo', 'query', { text: 7 }, 1000],
      ['add', 'mutation', { n: 2 }, 1000],
      ['add', 'query', { n: 2 }, 1000],
      ['nope', 'query', {}, 1000],
    ])
    expect(status).toBe(200)
    const byIndex = new Map(lines.map(([index, code, body]) => [index, { code, body }]))
    expect(byIndex.size).toBe(6)
    expect(byIndex.get(0)).toEqual({ code: 200, body: { result: { data: 'a' } } })
    expect(byIndex.get(1)?.code).toBe(500)
    expect(byIndex.get(1)?.body.error?.data.code).toBe('INTERNAL_SERVER_ERROR')
    expect(byIndex.get(2)?.code).toBe(400)
    expect(byIndex.get(3)?.code).toBe(200)
    expect(byIndex.get(4)?.code).toBe(405)
    expect(byIndex.get(5)?.code).toBe(404)
  })

  it('streams answers as they complete: a slow item does not hold back the others', async () => {
    const { lines, arrivals } = await batch([
      ['sleep', 'query', { ms: 800 }, 5000],
      ['sleep', 'query', { ms: 0 }, 5000],
      ['echo', 'query', { text: 'quick' }, 5000],
    ])
    expect(lines).toHaveLength(3)
    // The quick items were written first, the slow one last, when it was done.
    expect(
      lines
        .map(([index]) => index)
        .slice(0, 2)
        .sort(),
    ).toEqual([1, 2])
    expect(lines[lines.length - 1]?.[0]).toBe(0)
    expect(arrivals[2]).toBeGreaterThanOrEqual(750)
  })

  it('refuses a batch over maxBatchSize with 413, and a malformed batch with 400', async () => {
    const tooMany = await batch(
      Array.from({ length: 9 }, () => ['echo', 'query', { text: 'x' }, 1000]),
    )
    expect(tooMany.status).toBe(413)
    expect(tooMany.text).toContain('maxBatchSize 8')
    for (const body of [[], [['echo']], { a: 1 }, [['echo', 'subscription', {}, 1]]]) {
      expect((await batch(body)).status).toBe(400)
    }
  })
})

describe('framework client on the fast path', () => {
  it('micro-batches calls made in the same tick into one request, splitting at the batch size', async () => {
    await withDependencies(
      etcd.endpoint,
      NAMESPACE,
      ['kitchen'],
      async (deps) => {
        const client = deps.clients.get('kitchen')!
        await client.call('echo', { text: 'warm' })
        let before = requests
        const eight = await Promise.all(
          Array.from({ length: 8 }, (_, i) => client.call('echo', { text: `t${i}` })),
        )
        expect(eight).toEqual(Array.from({ length: 8 }, (_, i) => `t${i}`))
        expect(requests - before).toBe(1)

        // Over the service's maxBatchSize (8): refused with 413 before anything ran, so the
        // client halves the batch until it fits; every call still gets its own answer.
        before = requests
        const twenty = await Promise.all(
          Array.from({ length: 20 }, (_, i) => client.call('echo', { text: `u${i}` })),
        )
        expect(twenty).toEqual(Array.from({ length: 20 }, (_, i) => `u${i}`))
        expect(requests - before).toBe(7)
      },
      // Requests, not the RPC stream: this is about batching them.
      { stream: false },
    )
  })
})

describe('batch sizes by default', () => {
  let plain: RunningInstance
  /** Items per /_rpc/_batch request the instance received, in arrival order. */
  const batchSizes: number[] = []

  beforeAll(async () => {
    // No FRAMEWORK_MAX_BATCH: the service's own default.
    plain = await startInProcess(kitchen, etcd.endpoint, 'fast-path-defaults')
    // Registration runs in the background: a client that lists before it finds no instance.
    await waitFor('the instance registered', () => plain.registration.registered)
    plain.server.on('request', (req: IncomingMessage) => {
      if (req.method !== 'POST' || req.url !== '/_rpc/_batch') return
      // A second reader of the body, beside the service's own: only counts its items.
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        const items = JSON.parse(Buffer.concat(chunks).toString()) as unknown[]
        batchSizes.push(items.length)
      })
    })
  })

  afterAll(async () => {
    await plain?.stop()
  })

  it('the service takes batches of up to 128 calls (FRAMEWORK_MAX_BATCH default) and refuses 129 with 413', async () => {
    const send = (n: number) =>
      fetch(`${plain.instance.url}/_rpc/_batch`, {
        method: 'POST',
        body: JSON.stringify(
          Array.from({ length: n }, () => ['echo', 'query', { text: 'x' }, 5_000]),
        ),
      })
    const full = await send(DEFAULT_MAX_BATCH_SIZE)
    expect(DEFAULT_MAX_BATCH_SIZE).toBe(128)
    expect(full.status).toBe(200)
    expect((await full.text()).trim().split('\n')).toHaveLength(128)
    const over = await send(DEFAULT_MAX_BATCH_SIZE + 1)
    expect(over.status).toBe(413)
    expect(await over.text()).toContain('maxBatchSize 128')
  })

  it('the client sends calls made in one tick in batches of at most 64', async () => {
    await withDependencies(
      etcd.endpoint,
      'fast-path-defaults',
      ['kitchen'],
      async (deps) => {
        const client = deps.clients.get('kitchen')!
        await client.call('echo', { text: 'warm' })
        batchSizes.length = 0
        const answers = await Promise.all(
          Array.from({ length: 150 }, (_, i) => client.call('echo', { text: `b${i}` })),
        )
        expect(answers).toEqual(Array.from({ length: 150 }, (_, i) => `b${i}`))
        // 150 = 64 + 64 + 22: under the service's 128, so nothing was refused and halved.
        expect(MAX_CLIENT_BATCH).toBe(64)
        expect([...batchSizes].sort((a, b) => b - a)).toEqual([64, 64, 22])
      },
      { stream: false },
    )
  })
})

describe('tRPC interop', () => {
  it('a stock @trpc/client (httpLink and httpBatchLink) calls the standard adapter at /trpc', async () => {
    type Router = (typeof kitchen)['router']
    const plain = createTRPCClient<Router>({ links: [httpLink({ url: `${url}/trpc` })] })
    expect(await plain.echo.query({ text: 'plain' })).toBe('plain')
    expect(await plain.nested.ping.query()).toBe('pong')
    expect(typeof (await plain.add.mutate({ n: 1 }))).toBe('number')
    await expect(plain.forbidden.query()).rejects.toMatchObject({ data: { code: 'FORBIDDEN' } })
    const batched = createTRPCClient<Router>({ links: [httpBatchLink({ url: `${url}/trpc` })] })
    const [a, b] = await Promise.all([
      batched.echo.query({ text: 'x' }),
      batched.nested.ping.query(),
    ])
    expect([a, b]).toEqual(['x', 'pong'])
  })
})
