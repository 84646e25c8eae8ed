import { createTRPCClient, httpBatchLink, TRPCClientError } from '@trpc/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { isOverloadedAnswer, OVERLOADED_DATA } from '../../framework/protocol/overload.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import busy, { runs } from '../fixtures/app/services/busy/index.js'
import { startInProcess } from '../support/in-process.js'
import { raw } from '../support/raw-request.js'
import { RawStream, waitUntil } from '../support/raw-stream.js'
import { waitFor } from '../support/wait.js'

const NAMESPACE = 'overload'
/** The instance's limit: two calls in flight. */
const LIMIT = 2
/** Long enough that the filling calls are still running while every probe is answered. */
const HOLD_MS = 3_000
let etcd: EtcdServer
let running: RunningInstance
let url: string

beforeAll(async () => {
  etcd = await EtcdServer.start()
  running = await startInProcess(busy, etcd.endpoint, NAMESPACE, {
    FRAMEWORK_MAX_INFLIGHT: String(LIMIT),
  })
  url = running.instance.url
})

afterAll(async () => {
  await running?.stop()
  await etcd?.dispose()
})

const workPath = (ms: number) => `/_rpc/work?input=${encodeURIComponent(JSON.stringify({ ms }))}`

/** Starts `count` calls that hold the instance for HOLD_MS, once they are all running. */
async function fill(count: number): Promise<Promise<unknown>[]> {
  const before = runs.running
  const calls = Array.from({ length: count }, () => raw(url, 'GET', workPath(HOLD_MS)))
  await waitFor('the filling calls to run', () => runs.running === before + count)
  return calls
}

async function shedCount(transport: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const match = new RegExp(
    `^framework_server_shed_total\\{transport="${transport}"\\} (\\d+)$`,
    'm',
  ).exec(text)
  return Number(match?.[1] ?? Number.NaN)
}

function expectShed(answer: { status: number; body: string; headers: Record<string, unknown> }) {
  expect(answer.status).toBe(503)
  expect(answer.headers['retry-after']).toBe('1')
  const body = JSON.parse(answer.body) as unknown
  expect(isOverloadedAnswer(503, body)).toBe(true)
  expect(body).toMatchObject({
    error: { data: { code: 'SERVICE_UNAVAILABLE', httpStatus: 503, ...OVERLOADED_DATA } },
  })
}

describe(`an instance at FRAMEWORK_MAX_INFLIGHT=${LIMIT}`, () => {
  it('sheds /_rpc queries, mutations and batches, /trpc requests and stream frames; none of them runs', async () => {
    const ranBefore = runs.queries + runs.mutations
    const shedBefore = {
      rpc: await shedCount('rpc'),
      trpc: await shedCount('trpc'),
      stream: await shedCount('stream'),
    }
    const filling = await fill(LIMIT)

    expectShed(await raw(url, 'GET', workPath(0)))
    // A mutation's body is left unread: the answer does not wait for it.
    expectShed(await raw(url, 'POST', '/_rpc/write', JSON.stringify({ ms: 0 })))
    const batch = await raw(
      url,
      'POST',
      '/_rpc/_batch',
      JSON.stringify([
        ['work', 'query', { ms: 0 }, null],
        ['write', 'mutation', { ms: 0 }, null],
      ]),
    )
    expectShed(batch)

    expectShed(await raw(url, 'GET', `/trpc/work?input=${encodeURIComponent('{"ms":0}')}`))
    // tRPC's own batching client gets an error per call, in its own shape.
    const trpc = createTRPCClient<typeof busy.router>({
      links: [httpBatchLink({ url: `${url}/trpc` })],
    })
    const errors = await Promise.all([
      trpc.work.query({ ms: 0 }).catch((err: unknown) => err),
      trpc.ran.query().catch((err: unknown) => err),
    ])
    for (const err of errors) {
      expect(err).toBeInstanceOf(TRPCClientError)
      expect((err as TRPCClientError<typeof busy.router>).data).toMatchObject({
        code: 'SERVICE_UNAVAILABLE',
        ...OVERLOADED_DATA,
      })
    }

    const stream = await RawStream.open(url)
    stream.send('[1,"work","query",{"ms":0},null]\n[2,"write","mutation",{"ms":0},null]\n')
    await waitUntil(() => stream.answers.length === 2, 'two stream answers')
    for (const [id, status, body] of stream.answers) {
      expect([1, 2]).toContain(id)
      expect(status).toBe(503)
      expect(isOverloadedAnswer(status, body)).toBe(true)
    }
    stream.socket.destroy()

    // Nothing shed ran; the filling calls did, and the counter saw every shed.
    expect(runs.queries + runs.mutations).toBe(ranBefore + LIMIT)
    expect((await shedCount('rpc')) - shedBefore.rpc).toBe(3)
    expect((await shedCount('trpc')) - shedBefore.trpc).toBe(2)
    expect((await shedCount('stream')) - shedBefore.stream).toBe(2)
    for (const answer of await Promise.all(filling)) {
      expect((answer as { status: number }).status).toBe(200)
    }
    // Below the limit again: calls run.
    expect((await raw(url, 'GET', workPath(0))).status).toBe(200)
  }, 30_000)

  it('admits batch calls one by one up to the limit and sheds the rest on their own lines', async () => {
    const ranBefore = runs.queries
    const filling = await fill(LIMIT - 1)
    const answer = await raw(
      url,
      'POST',
      '/_rpc/_batch',
      JSON.stringify([
        ['work', 'query', { ms: 0 }, null],
        ['work', 'query', { ms: 0 }, null],
        ['work', 'query', { ms: 0 }, null],
      ]),
    )
    expect(answer.status).toBe(200)
    const lines = answer.body
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as [number, number, unknown])
      .sort((a, b) => a[0] - b[0])
    expect(lines.map(([index, status]) => [index, status])).toEqual([
      [0, 200],
      [1, 503],
      [2, 503],
    ])
    expect(isOverloadedAnswer(503, lines[1]![2])).toBe(true)
    await Promise.all(filling)
    expect(runs.queries).toBe(ranBefore + LIMIT)
  }, 30_000)
})
