import { once } from 'node:events'
import { connect } from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import { RemoteProcedureError } from '../../framework/client/call-errors.js'
import { connect as connectFramework } from '../../framework/index.js'
import type cache from '../../services/cache/index.js'
import { useCacheUnderTest } from '../support/cache-under-test.js'
import { faultRow } from '../support/fault-summary.js'
import { randomValue, seeded } from '../support/fuzz.js'

const cacheUnderTest = useCacheUnderTest('fuzz')
const { query, mutate } = cacheUnderTest
let client: ReturnType<typeof connectFramework<{ cache: typeof cache }>> | undefined
afterAll(() => client?.close())

/**
 * The status a call over the RPC stream (the framework's client, the direct procedure path)
 * came to: 200, the remote error's HTTP status, or what went wrong if it got no answer.
 */
async function streamStatus(path: 'get' | 'set', input: unknown): Promise<number | string> {
  client ??= connectFramework<{ cache: typeof cache }>({
    deps: { cache: true },
    etcdEndpoints: cacheUnderTest.etcdEndpoint,
    namespace: cacheUnderTest.namespace,
  })
  const call = client.deps.cache[path] as (input: unknown) => Promise<unknown>
  try {
    await call(input)
    return 200
  } catch (err) {
    if (err instanceof RemoteProcedureError) return err.remote.httpStatus
    return `no answer: ${(err as Error).message}`
  }
}

describe('fuzzed and garbage input', () => {
  it('400 random inputs to both paths (tRPC adapter and fast path) and batches: never a 5xx, always an error body, per batch item too, the same status on every path (the stream too)', async () => {
    const row = faultRow(
      'bad input: fuzzed requests (tRPC adapter, fast path, batches, bad percent-encodings)',
    )
    const random = seeded(20261126)
    const statuses = new Map<number, number>()
    const itemStatuses = new Map<number, number>()
    const unexpected: string[] = []
    let compared = 0
    const count = (map: Map<number, number>, status: number) =>
      map.set(status, (map.get(status) ?? 0) + 1)
    const check = async (label: string, response: Response, batchOf?: number) => {
      count(statuses, response.status)
      const text = await response.text()
      if (response.status >= 500 || (response.status !== 200 && !text.includes('message'))) {
        unexpected.push(`${label} → ${response.status} ${text.slice(0, 200)}`)
      }
      if (batchOf === undefined || response.status !== 200) return
      // A batch answered 200: one `[index, status, body]` line per item, and each item must hold
      // to the same rule as a request of its own.
      const lines = text.split('\n').filter((line) => line !== '')
      const answered = new Set<number>()
      for (const line of lines) {
        const [index, status, body] = JSON.parse(line) as [number, number, { error?: unknown }]
        answered.add(index)
        count(itemStatuses, status)
        if (status >= 500 || (status !== 200 && !JSON.stringify(body).includes('message'))) {
          unexpected.push(`${label} item ${index} → ${status} ${line.slice(0, 200)}`)
        }
      }
      if (answered.size !== batchOf || lines.length !== batchOf) {
        unexpected.push(
          `${label} → ${lines.length} answers for ${batchOf} items: ${text.slice(0, 200)}`,
        )
      }
    }
    for (let i = 0; i < 100; i++) {
      const input = randomValue(random, 6)
      const body = JSON.stringify(input) ?? 'null'
      const trpcSet = await mutate('set', body)
      await check(`/trpc/set ${body.slice(0, 80)}`, trpcSet)
      const trpcGet = await query('get', input)
      await check(`/trpc/get ${body.slice(0, 80)}`, trpcGet)
      const rpcSet = await fetch(`${cacheUnderTest.url}/_rpc/set`, { method: 'POST', body })
      await check(`/_rpc/set ${body.slice(0, 80)}`, rpcSet)
      // tRPC's own runner (/trpc) and the direct procedure path (/_rpc requests, the RPC stream)
      // must come to the same status for the same input: nothing new is accepted or refused.
      const sets = [trpcSet.status, rpcSet.status, await streamStatus('set', input)]
      const gets = [trpcGet.status, await streamStatus('get', input)]
      compared += 5
      if (new Set(sets).size !== 1 || new Set(gets).size !== 1) {
        unexpected.push(
          `${body.slice(0, 80)}: set /trpc, /_rpc, stream → ${sets.join(', ')}; get /trpc, stream → ${gets.join(', ')}`,
        )
      }
      // A batch whose items are themselves random: a wrong shape anywhere → 400 for the batch,
      // well-formed items with bad input → each item its own 400.
      const items = Array.from({ length: 1 + Math.floor(random() * 3) }, () =>
        random() < 0.5
          ? ['set', 'mutation', randomValue(random, 3), 1_000]
          : randomValue(random, 2),
      )
      await check(
        `/_rpc/_batch ${JSON.stringify(items).slice(0, 80)}`,
        await fetch(`${cacheUnderTest.url}/_rpc/_batch`, {
          method: 'POST',
          body: JSON.stringify(items),
        }),
        items.length,
      )
    }
    // Procedure paths whose percent-encoding cannot be decoded (a URIError once killed the process).
    for (const path of ['/_rpc/%E0', '/_rpc/%ZZ', '/_rpc/a%2', '/trpc/%E0']) {
      for (const method of ['GET', 'POST']) {
        await check(`${method} ${path}`, await fetch(`${cacheUnderTest.url}${path}`, { method }))
      }
    }
    // Bytes that are not JSON at all.
    const bytes = Buffer.from(Array.from({ length: 2048 }, () => Math.floor(random() * 256)))
    for (const path of ['/trpc/set', '/_rpc/set', '/_rpc/_batch']) {
      await check(
        `${path} random bytes`,
        await fetch(`${cacheUnderTest.url}${path}`, { method: 'POST', body: bytes }),
      )
    }
    const healthz = (await fetch(`${cacheUnderTest.url}/healthz`)).status
    const tally = (map: Map<number, number>) =>
      [...map].map(([status, n]) => `${status}×${n}`).join(', ')
    row.measured({
      calls: [...statuses.values()].reduce((a, b) => a + b, 0),
      failed: unexpected.length,
      instances: 1,
      lost: healthz === 200 ? 0 : 1,
      note: `statuses ${tally(statuses)}; batch items ${tally(itemStatuses)}; ${compared} statuses compared across tRPC's runner and the direct path (/_rpc, stream); /healthz ${healthz} after`,
    })
    expect(unexpected).toEqual([])
    expect(compared).toBe(500)
    expect([...itemStatuses.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
    expect(healthz).toBe(200)
    row.passed()
  })

  it('garbage bytes on the raw port: the connection is closed, the service is unaffected', async () => {
    const row = faultRow('garbage bytes on a service port (5 connections)')
    const { port } = new URL(cacheUnderTest.url)
    const random = seeded(7)
    const payloads = [
      Buffer.from(Array.from({ length: 4096 }, () => Math.floor(random() * 256))),
      Buffer.from('GARBAGE / NONSENSE\r\n\r\n'),
      Buffer.from(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: ${'a'.repeat(128 * 1024)}\r\n\r\n`),
      Buffer.from('POST /_rpc/set HTTP/1.1\r\nContent-Length: -5\r\n\r\n'),
      Buffer.from('POST /_rpc/_batch HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'),
    ]
    const answers: string[] = []
    const wrong: string[] = []
    for (const payload of payloads) {
      const socket = connect(Number(port), '127.0.0.1')
      let received = ''
      socket.on('data', (chunk) => {
        received += chunk.toString('latin1')
      })
      socket.on('error', () => undefined)
      socket.write(payload)
      const closed = await Promise.race([
        once(socket, 'close').then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000)),
      ])
      socket.destroy()
      const head = received.split('\r\n')[0] ?? ''
      answers.push(head)
      const what = payload.subarray(0, 40).toString('latin1')
      if (!closed) wrong.push(`connection left open after ${what}`)
      if (/^HTTP\/1\.1 (200|5\d\d)/.test(received)) wrong.push(`${head} to ${what}`)
    }
    const healthz = (await fetch(`${cacheUnderTest.url}/healthz`)).status
    const after = (await query('get', { key: 'after-garbage' })).status
    row.measured({
      calls: payloads.length,
      failed: wrong.length,
      instances: 1,
      lost: healthz === 200 && after === 200 ? 0 : 1,
      note: `answers: ${answers.map((line) => line || '(closed)').join('; ')}; then /healthz ${healthz}, a call ${after}`,
    })
    expect(wrong).toEqual([])
    expect(healthz).toBe(200)
    expect(after).toBe(200)
    row.passed()
  })
})
