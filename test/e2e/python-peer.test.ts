import { describe, expect, it } from 'vitest'
import { contractHash } from '../../framework/service/manifest.js'
import { CallLoop } from '../support/call-loop.js'
import { CLIENT, OtlpReceiver, SERVER } from '../support/otlp-receiver.js'
import {
  getJson,
  queryUrl,
  RELAY_HELLO,
  PEER_TTL as TTL,
  usePythonPeers,
} from '../support/python-peer.js'
import { countBy } from '../support/spawned-app.js'
import { waitFor } from '../support/wait.js'

// A Python peer (clients/python-peer/peer.py) in the phone book, called through ctx.deps by the
// fixture service greet-relay. Its faults (kill -9, SIGTERM, lost registrations) are in
// test/reliability/python-peer.test.ts.

const py = usePythonPeers()

describe('a Python peer in the phone book (real etcd, real processes)', () => {
  it('writes a record the framework parses, on a lease of FRAMEWORK_TTL', async () => {
    const namespace = py.fixture.namespace()
    const peer = await py.startPeer(namespace)
    const record = await py.fixture.probe.record(peer.key) // parseRecord: throws with the reason if invalid
    expect(record).toMatchObject({
      v: 1,
      role: 'greeter',
      id: peer.id,
      url: peer.url,
      procedures: { greet: 'query' },
      contract: contractHash({ greet: 'query' }),
      load: { inflight: 0, eventLoopDelayMs: 0 },
      pid: peer.instance.pid,
    })
    expect(peer.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(Date.parse(record.startedAt)).toBeGreaterThan(Date.now() - 60_000)
    const lease = await py.fixture.probe.lease(peer.key)
    expect(lease.grantedTtl).toBe(TTL)
    expect(await py.fixture.probe.client.getAll().prefix(`/${namespace}/services/`).keys()).toEqual(
      [peer.key],
    )
    expect((await getJson(`${peer.url}/readyz`)).status).toBe(200)
  })

  it('calls through greet-relay (ctx.deps) reach both Python instances', async () => {
    const namespace = py.fixture.namespace()
    const peers = await Promise.all([py.startPeer(namespace), py.startPeer(namespace)])
    const relay = await py.startRelay(namespace)
    const loop = new CallLoop(relay.url, 40, { target: RELAY_HELLO, concurrency: 1 })
    await loop.done
    expect(loop.failures).toEqual([])
    expect(loop.samples).toHaveLength(40)
    const served = countBy(loop.samples)
    expect(Object.keys(served).sort()).toEqual(peers.map((peer) => peer.id).sort())
    for (const peer of peers) expect(served[peer.id]).toBeGreaterThanOrEqual(10)
    // Concurrent calls to one instance travel as one /_rpc/_batch request: the peer answers those too.
    const burst = new CallLoop(relay.url, 200, { target: RELAY_HELLO, concurrency: 16 })
    await burst.done
    expect(burst.failures).toEqual([])
    expect(Object.keys(countBy(burst.samples)).sort()).toEqual(peers.map((p) => p.id).sort())
  })

  it('bad input to the peer itself: 400 with a tRPC error body, 404 for unknown procedures; it stays up', async () => {
    const namespace = py.fixture.namespace()
    const peer = await py.startPeer(namespace)

    const wrongType = await getJson(queryUrl(peer.url, 'greet', { name: 3 }))
    expect(wrongType.status).toBe(400)
    expect(wrongType.body.error).toMatchObject({
      code: -32600,
      data: {
        code: 'BAD_REQUEST',
        httpStatus: 400,
        path: 'greet',
        issues: [{ path: ['name'], code: 'invalid_type' }],
      },
    })
    expect(wrongType.body.error.message).toContain('name')

    const missing = await getJson(`${peer.url}/trpc/greet`)
    expect(missing.status).toBe(400)
    expect(missing.body.error.data.issues).toEqual([
      { path: [], code: 'invalid_type', message: expect.stringContaining('expected object') },
    ])

    const notJson = await getJson(`${peer.url}/trpc/greet?input=${encodeURIComponent('{name')}`)
    expect(notJson.status).toBe(400)
    expect(notJson.body.error.data.code).toBe('BAD_REQUEST')

    const tooLong = await getJson(queryUrl(peer.url, 'greet', { name: 'x'.repeat(101) }))
    expect(tooLong.status).toBe(400)
    expect(tooLong.body.error.data.issues[0]).toMatchObject({ path: ['name'], code: 'too_big' })

    const unknown = await getJson(queryUrl(peer.url, 'nope', {}))
    expect(unknown.status).toBe(404)
    expect(unknown.body.error).toMatchObject({
      code: -32004,
      data: { code: 'NOT_FOUND', httpStatus: 404, path: 'nope' },
    })

    const post = await fetch(`${peer.url}/trpc/greet`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'a' }),
    })
    expect(post.status).toBe(405)
    await post.body?.cancel()

    // tRPC batch form: per-call answers, 207 when they differ.
    const batch = await getJson(
      `${peer.url}/trpc/greet,nope?batch=1&input=${encodeURIComponent(JSON.stringify({ 0: { name: 'b' } }))}`,
    )
    expect(batch.status).toBe(207)
    expect(batch.body[0]).toEqual({ result: { data: { message: 'hello, b', instance: peer.id } } })
    expect(batch.body[1].error.data.code).toBe('NOT_FOUND')

    // Still up, still registered, still answering.
    const ok = await getJson(queryUrl(peer.url, 'greet', { name: 'still here' }))
    expect(ok).toEqual({
      status: 200,
      body: { result: { data: { message: 'hello, still here', instance: peer.id } } },
    })
    expect(peer.instance.child.exitCode).toBeNull()
    expect(await py.fixture.probe.has(peer.key)).toBe(true)
  })

  it('a bad input through greet-relay comes back as the peer’s BAD_REQUEST', async () => {
    const namespace = py.fixture.namespace()
    await py.startPeer(namespace)
    const relay = await py.startRelay(namespace)
    const answer = await getJson(queryUrl(relay.url, 'hello', { name: '' }))
    expect(answer.status).toBe(400)
    expect(answer.body.error.data.code).toBe('BAD_REQUEST')
    expect(answer.body.error.message).toContain('Too small')
  })

  it('trace context through the peer: it serves each traced call as a child of the relay’s CLIENT span (single requests and batches), and ignores a malformed traceparent', async () => {
    const receiver = await OtlpReceiver.start()
    try {
      const namespace = py.fixture.namespace()
      const peer = await py.startPeer(namespace)
      const relay = await py.startRelay(namespace, {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_TRACES_SAMPLER: 'always_on',
        OTEL_BSP_SCHEDULE_DELAY: '50',
      })
      // One call (a single request to the peer), then a tRPC batch of 8 to the relay: its
      // procedures call the peer in the same tick, which sends them as one /_rpc/_batch.
      expect((await getJson(queryUrl(relay.url, 'hello', { name: 'one' }))).status).toBe(200)
      const inputs = Object.fromEntries(Array.from({ length: 8 }, (_, n) => [n, { name: `b${n}` }]))
      const batch = await getJson(
        `${relay.url}/trpc/${Array(8).fill('hello').join(',')}?batch=1&input=${encodeURIComponent(JSON.stringify(inputs))}`,
      )
      expect(batch.status).toBe(200)
      expect(batch.body).toHaveLength(8)
      let clients = receiver.spans.filter((span) => span.kind === CLIENT)
      await waitFor('the relay’s 9 client spans', () => {
        clients = receiver.spans.filter((span) => span.kind === CLIENT)
        return clients.length === 9
      })
      const traced = () => peer.instance.lines.filter((line) => line.msg === 'traced call')
      await waitFor('the peer’s 9 traced calls', () => traced().length === 9)
      for (const client of clients) {
        expect(client).toMatchObject({ service: 'greet-relay', name: 'greeter/greet' })
        // The relay's SERVER span is the client span's parent…
        const server = receiver.spans.find((span) => span.spanId === client.parentSpanId)
        expect(server).toMatchObject({
          kind: SERVER,
          name: expect.stringMatching(/^greet-relay\/hello(,hello)*$/),
          traceId: client.traceId,
        })
        // …and the peer served the call as the client span's child, in the same trace.
        const line = traced().find((l) => l.parent_span_id === client.spanId)
        expect(line, `the peer's line for client span ${client.spanId}`).toMatchObject({
          trace_id: client.traceId,
          path: 'greet',
          status: 200,
        })
        expect(line!.span_id).toMatch(/^[0-9a-f]{16}$/)
        expect(line!.child_traceparent).toBe(`00-${client.traceId}-${line!.span_id}-01`)
      }
      // Straight to the peer: a malformed traceparent is ignored (the call answers 200, no span),
      // a valid one is the parent.
      const before = traced().length
      const greet = `${peer.url}/_rpc/greet?input=${encodeURIComponent('{"name":"x"}')}`
      const trace = '4bf92f3577b34da6a3ce929d0e0e4736'
      for (const traceparent of [
        `ff-${trace}-00f067aa0ba902b7-01`,
        `00-${trace}-00F067AA0BA902B7-01`,
      ]) {
        const response = await fetch(greet, { headers: { traceparent } })
        expect(response.status).toBe(200)
      }
      expect(
        (await fetch(greet, { headers: { traceparent: `00-${trace}-00f067aa0ba902b7-00` } }))
          .status,
      ).toBe(200)
      await waitFor('the traced direct call', () => traced().length === before + 1)
      expect(traced().at(-1)).toMatchObject({ trace_id: trace, parent_span_id: '00f067aa0ba902b7' })
      expect(traced().at(-1)!.child_traceparent).toMatch(
        new RegExp(`^00-${trace}-[0-9a-f]{16}-00$`),
      )
    } finally {
      await receiver.close()
    }
  })
})
