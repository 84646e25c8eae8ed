import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../../framework/cli/free-port.js'
import { connect } from '../../framework/client/connect.js'
import type api from '../../services/api/index.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { gatewayReady, spawnGateway } from '../support/gateway-process.js'
import { REPO_ROOT } from '../support/instance.js'
import { NoUpgradeProxy } from '../support/no-upgrade-proxy.js'
import { CLIENT, OtlpReceiver, type ReceivedSpan, SERVER } from '../support/otlp-receiver.js'
import { RawStream, waitUntil } from '../support/raw-stream.js'
import { startRegistered } from '../support/spawned-app.js'
import { waitFor } from '../support/wait.js'

// Traces through real processes: api and cache export to an OTLP/HTTP receiver in this process.

const fixture = useEtcd('tracing')
let receiver: OtlpReceiver

beforeAll(async () => {
  receiver = await OtlpReceiver.start()
})
afterAll(async () => {
  await receiver?.close()
})

/** What a traced instance gets: export to the receiver, every trace sampled, exports every 50 ms. */
function tracedEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_TRACES_SAMPLER: 'always_on',
    OTEL_BSP_SCHEDULE_DELAY: '50',
    ...extra,
  }
}

function spawnTraced(role: string, namespace: string, extra?: Record<string, string>) {
  return startRegistered(
    (r, ns) => fixture.spawn(r, ns, { env: tracedEnv(extra) }),
    role,
    namespace,
  )
}

/** Calls `api.get` through discovery (connect(), which does not trace itself). */
async function getThroughDiscovery(namespace: string, key: string) {
  const connection = connect<{ api: typeof api }>({
    deps: { api: true },
    etcdEndpoints: fixture.etcd.endpoint,
    namespace,
  })
  try {
    return await connection.deps.api.get({ key })
  } finally {
    await connection.close()
  }
}

/**
 * A trace rooted (at the receiver) by an api SERVER span of `get` that arrived after `mark`,
 * complete (`spans` spans) and accepted by `accept`. (An instance killed with -9 never exports
 * what it had buffered: traces of earlier calls can arrive incomplete.)
 */
async function apiGetTrace(
  mark: number,
  accept: (trace: ReceivedSpan[]) => boolean = () => true,
  spans = 3,
) {
  let found: ReceivedSpan[] = []
  await waitFor(`an api.get trace (${spans} spans) at the receiver`, () => {
    const roots = receiver.spans
      .slice(mark)
      .filter((span) => span.service === 'api' && span.kind === SERVER && span.name === 'api/get')
    for (const root of roots) {
      const trace = receiver.trace(root.traceId)
      if (trace.length >= spans && accept(trace)) {
        found = trace
        return true
      }
    }
    return false
  })
  return found
}

/** The three spans of api.get: api SERVER → api CLIENT (cache.get) → cache SERVER, checked. */
function expectApiGetChain(trace: ReceivedSpan[], servedBy: string, apiParent = '') {
  expect(trace).toHaveLength(3)
  const apiServer = trace.find((span) => span.service === 'api' && span.kind === SERVER)!
  const client = trace.find((span) => span.service === 'api' && span.kind === CLIENT)!
  const cacheServer = trace.find((span) => span.service === 'cache' && span.kind === SERVER)!
  expect(apiServer).toMatchObject({
    name: 'api/get',
    // connect() sends no traceparent: the api's span starts the trace.
    parentSpanId: apiParent,
    attributes: {
      'framework.role': 'api',
      'framework.procedure': 'get',
      'framework.kind': 'query',
      'framework.code': 'OK',
      'http.response.status_code': 200,
    },
  })
  expect(client).toMatchObject({
    name: 'cache/get',
    parentSpanId: apiServer.spanId,
    attributes: {
      'framework.role': 'api',
      'framework.dependency': 'cache',
      'framework.procedure': 'get',
      'framework.code': 'OK',
      'framework.attempts': 1,
    },
    events: [
      {
        name: 'attempt',
        attributes: {
          'framework.instance': servedBy,
          'framework.retry': 0,
          'framework.outcome': '200',
          'framework.ejected': false,
        },
      },
    ],
  })
  expect(cacheServer).toMatchObject({
    name: 'cache/get',
    parentSpanId: client.spanId,
    attributes: {
      'framework.role': 'cache',
      'framework.procedure': 'get',
      'framework.kind': 'query',
      'framework.code': 'OK',
    },
  })
  return { apiServer, client, cacheServer }
}

describe('W3C trace context through every hop (real etcd, processes, OTLP/HTTP JSON)', () => {
  it('over the RPC stream: one trace, api SERVER → CLIENT → cache SERVER', async () => {
    const namespace = fixture.namespace()
    const cache = await spawnTraced('cache', namespace)
    await spawnTraced('api', namespace)
    const mark = receiver.spans.length
    const answer = await getThroughDiscovery(namespace, 'k-stream')
    expect(answer.servedBy).toBe(cache.id)
    expectApiGetChain(await apiGetTrace(mark), cache.id)
  })

  it('over requests (the cache behind a proxy that drops upgrades): the same trace', async () => {
    const namespace = fixture.namespace()
    const port = await freePort()
    const proxy = await NoUpgradeProxy.start(port)
    try {
      const cache = await spawnTraced('cache', namespace, {
        PORT: String(port),
        ADVERTISE_URL: proxy.url,
      })
      await spawnTraced('api', namespace)
      const mark = receiver.spans.length
      const answer = await getThroughDiscovery(namespace, 'k-requests')
      expect(answer.servedBy).toBe(cache.id)
      // The api tried the stream once, was refused, and sent the call as a request.
      expect(proxy.droppedUpgrades).toBeGreaterThan(0)
      expectApiGetChain(await apiGetTrace(mark), cache.id)
    } finally {
      await proxy.close()
    }
  })

  it('through the gateway: the outside caller’s traceparent is the parent of the gateway’s CLIENT span, and the trace goes on through api to cache', async () => {
    const namespace = fixture.namespace()
    const cache = await spawnTraced('cache', namespace)
    await spawnTraced('api', namespace)
    const gateway = fixture.adopt(spawnGateway({ ...fixture.env(namespace), ...tracedEnv() }))
    const { url } = await gateway.listening()
    await gatewayReady(url)
    const traceId = '5bf92f3577b34da6a3ce929d0e0e4736'
    const spanId = '10f067aa0ba902b7'
    const input = encodeURIComponent(JSON.stringify({ key: 'k-edge' }))
    const response = await fetch(`${url}/api/api/get?input=${input}`, {
      headers: { traceparent: `00-${traceId}-${spanId}-01` },
    })
    expect(response.status).toBe(200)
    await waitFor('the 4 spans of the trace', () => receiver.trace(traceId).length >= 4)
    const trace = receiver.trace(traceId)
    const edge = trace.find((span) => span.service === 'gateway')!
    expect(edge).toMatchObject({
      kind: CLIENT,
      name: 'api/get',
      parentSpanId: spanId,
      attributes: { 'framework.role': 'gateway', 'framework.dependency': 'api' },
    })
    const apiServer = trace.find((span) => span.service === 'api' && span.kind === SERVER)!
    expect(apiServer.parentSpanId).toBe(edge.spanId)
    expectApiGetChain(
      trace.filter((span) => span !== edge),
      cache.id,
      edge.spanId,
    )
  })

  it('an incoming traceparent is the parent; a malformed one on /trpc, /_rpc and in a stream frame starts a new trace, and the call succeeds', async () => {
    const namespace = fixture.namespace()
    await spawnTraced('cache', namespace)
    const { url } = await spawnTraced('api', namespace)
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
    const spanId = '00f067aa0ba902b7'
    const input = encodeURIComponent(JSON.stringify({ key: 'k-context' }))

    // A valid one: api's span is its child, and the trace goes on to cache.
    let mark = receiver.spans.length
    const valid = await fetch(`${url}/_rpc/get?input=${input}`, {
      headers: { traceparent: `00-${traceId}-${spanId}-01`, tracestate: 'vendor=1' },
    })
    expect(valid.status).toBe(200)
    const continued = await apiGetTrace(mark)
    expect(continued.map((span) => span.traceId)).toEqual([traceId, traceId, traceId])
    const apiSpan = continued.find((span) => span.service === 'api' && span.kind === SERVER)!
    expect(apiSpan.parentSpanId).toBe(spanId)

    const malformed = [
      `ff-${traceId}-${spanId}-01`,
      `00-${traceId.toUpperCase()}-${spanId}-01`,
      `00-${traceId}-${'0'.repeat(16)}-01`,
      `00-${traceId}-${spanId}-01-${'x'.repeat(300)}`,
    ]
    for (const traceparent of malformed) {
      for (const path of ['/trpc/get', '/_rpc/get']) {
        mark = receiver.spans.length
        const response = await fetch(`${url}${path}?input=${input}`, { headers: { traceparent } })
        expect(response.status, `${path} with ${traceparent.slice(0, 60)}`).toBe(200)
        const trace = await apiGetTrace(mark)
        const root = trace.find((span) => span.service === 'api' && span.kind === SERVER)!
        expect(root.traceId).not.toBe(traceId)
        expect(root.parentSpanId).toBe('')
        expect(trace.every((span) => span.traceId === root.traceId)).toBe(true)
      }
    }

    // In a stream frame's metadata slot: [id, path, kind, input, deadlineMs, metadata].
    const stream = await RawStream.open(url)
    try {
      mark = receiver.spans.length
      const metadata = { traceparent: malformed[0]! }
      stream.send(`${JSON.stringify([1, 'get', 'query', { key: 'k-context' }, null, metadata])}\n`)
      await waitUntil(() => stream.answers.length > 0, 'the stream answer')
      expect(stream.answers[0]?.slice(0, 2)).toEqual([1, 200])
      const trace = await apiGetTrace(mark)
      const root = trace.find((span) => span.service === 'api' && span.kind === SERVER)!
      expect(root.traceId).not.toBe(traceId)
      expect(root.parentSpanId).toBe('')
    } finally {
      stream.socket.destroy()
    }
  })

  it('sampling decided before any span: an unsampled parent or a dropped root makes no span, and the ids still travel on with the flag off', async () => {
    const namespace = fixture.namespace()
    // cache records everything (always_on ignores the parent's flag), so it shows what reached it;
    // api follows its parent (the default, parentbased_always_on) and drops every root (ratio 0).
    await spawnTraced('cache', namespace)
    const { url } = await spawnTraced('api', namespace, {
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0',
    })
    const input = encodeURIComponent(JSON.stringify({ key: 'k-sampling' }))
    const cacheSpanOf = async (mark: number) => {
      let found: ReceivedSpan | undefined
      await waitFor('the cache span', () => {
        found = receiver.spans.slice(mark).find((span) => span.service === 'cache')
        return found !== undefined
      })
      return found!
    }
    const traceId = '7cf92f3577b34da6a3ce929d0e0e4737'
    const spanId = '10f067aa0ba902b7'

    // Unsampled parent: api records nothing; cache gets the trace id and api's (unrecorded) span.
    let mark = receiver.spans.length
    let response = await fetch(`${url}/_rpc/get?input=${input}`, {
      headers: { traceparent: `00-${traceId}-${spanId}-00` },
    })
    expect(response.status).toBe(200)
    let cacheSpan = await cacheSpanOf(mark)
    expect(cacheSpan.traceId).toBe(traceId)
    expect(cacheSpan.parentSpanId).toMatch(/^[0-9a-f]{16}$/)
    expect(cacheSpan.parentSpanId).not.toBe(spanId)

    // No parent, ratio 0: api drops the root; cache gets a new trace id, not the earlier one.
    mark = receiver.spans.length
    response = await fetch(`${url}/_rpc/get?input=${input}`)
    expect(response.status).toBe(200)
    cacheSpan = await cacheSpanOf(mark)
    expect(cacheSpan.traceId).toMatch(/^[0-9a-f]{32}$/)
    expect(cacheSpan.traceId).not.toBe(traceId)

    // Sampled parent: api keeps it (parent-based), so its two spans are there this time.
    const keptId = '8cf92f3577b34da6a3ce929d0e0e4738'
    mark = receiver.spans.length
    response = await fetch(`${url}/_rpc/get?input=${input}`, {
      headers: { traceparent: `00-${keptId}-${spanId}-01` },
    })
    expect(response.status).toBe(200)
    const kept = await apiGetTrace(mark)
    expect(kept.map((span) => span.traceId)).toEqual([keptId, keptId, keptId])
    // And the api made no span at all for the two dropped calls.
    const apiSpans = receiver.spans.filter((span) => span.service === 'api')
    expect(apiSpans.filter((span) => span.traceId === cacheSpan.traceId)).toEqual([])
    expect(apiSpans.filter((span) => span.traceId === traceId)).toEqual([])
    expect(apiSpans.filter((span) => span.traceId === keptId)).toHaveLength(2)
  })

  it('kill -9 of the cache a key routes to: the client span shows the failed attempt and the one that answered', async () => {
    const namespace = fixture.namespace()
    const caches = [await spawnTraced('cache', namespace), await spawnTraced('cache', namespace)]
    await spawnTraced('api', namespace)
    const connection = connect<{ api: typeof api }>({
      deps: { api: true },
      etcdEndpoints: fixture.etcd.endpoint,
      namespace,
    })
    try {
      // api routes a key to one cache instance (hash balancer): find the key's instance, kill it.
      await waitFor('api to see both caches', async () => {
        const seen = new Set<string>()
        for (let i = 0; i < 20; i++) {
          seen.add((await connection.deps.api.get({ key: `probe-${i}` })).servedBy)
        }
        return seen.size === 2
      })
      const key = 'k-victim'
      const { servedBy: victimId } = await connection.deps.api.get({ key })
      const victim = caches.find((cache) => cache.id === victimId)!
      const survivor = caches.find((cache) => cache.id !== victimId)!
      await victim.instance.kill('SIGKILL')
      const mark = receiver.spans.length
      const answer = await connection.deps.api.get({ key })
      expect(answer.servedBy).toBe(survivor.id)
      // The trace of this call: its client span tried both instances.
      const triedBoth = (trace: ReceivedSpan[]) =>
        trace.some((span) => {
          const tried = span.events.map((event) => event.attributes['framework.instance'])
          return tried.includes(victim.id) && tried.includes(survivor.id)
        })
      const trace = await apiGetTrace(mark, triedBoth)
      const client = trace.find((span) => span.service === 'api' && span.kind === CLIENT)!
      expect(client.attributes['framework.code']).toBe('OK')
      expect(client.attributes['framework.attempts']).toBe(2)
      expect(client.events.map((event) => event.attributes)).toEqual([
        {
          'framework.instance': victim.id,
          'framework.retry': 0,
          'framework.outcome': 'connect',
          'framework.ejected': true,
        },
        {
          'framework.instance': survivor.id,
          // A reroute when the call provably never left (0), a retry when it may have (1): which
          // one depends on how far the write got before the connection failed.
          'framework.retry': expect.toSatisfy((retry: number) => retry === 0 || retry === 1),
          'framework.outcome': '200',
          'framework.ejected': false,
        },
      ])
      // The cache that answered is the client span's child.
      const cacheServer = trace.find((span) => span.service === 'cache')!
      expect(cacheServer.parentSpanId).toBe(client.spanId)
    } finally {
      await connection.close()
    }
  })

  it('without an OTLP endpoint no OpenTelemetry module is loaded, and an incoming traceparent still reaches nested calls unchanged', async () => {
    const workdir = mkdtempSync(join(tmpdir(), 'framework-tracing-'))
    try {
      const probe = (name: string) => ({
        NODE_OPTIONS: `--import ${join(REPO_ROOT, 'test/support/module-probe.mjs')}`,
        MODULE_PROBE_FILE: join(workdir, `${name}.json`),
      })
      const namespace = fixture.namespace()
      const untraced = (role: string) =>
        startRegistered((r, ns) => fixture.spawn(r, ns, { env: probe(r) }), role, namespace)
      // cache traces (it reports what reached it); api does not trace, so it only forwards.
      const cache = await spawnTraced('cache', namespace, probe('traced-cache'))
      const api = await untraced('api')
      const traceId = '0af7651916cd43dd8448eb211c80319c'
      const spanId = 'b7ad6b7169203331'
      const mark = receiver.spans.length
      const input = encodeURIComponent(JSON.stringify({ key: 'k-forward' }))
      const response = await fetch(`${api.url}/_rpc/get?input=${input}`, {
        headers: { traceparent: `00-${traceId}-${spanId}-01` },
      })
      expect(response.status).toBe(200)
      let cacheSpan: ReceivedSpan | undefined
      await waitFor('the cache span of the forwarded trace', () => {
        cacheSpan = receiver.spans
          .slice(mark)
          .find((span) => span.service === 'cache' && span.kind === SERVER)
        return cacheSpan !== undefined
      })
      // The api did not take part: cache's span is the child of the caller's own span.
      expect(cacheSpan).toMatchObject({ traceId, parentSpanId: spanId })
      for (const started of [api, cache]) expect(await started.instance.kill('SIGTERM')).toBe(0)
      // prom-client (every instance's /metrics) requires @opentelemetry/api, the no-op API package
      // (for exemplars): the SDK, the exporter and the rest must not be there.
      const loaded = (name: string) =>
        (JSON.parse(readFileSync(join(workdir, `${name}.json`), 'utf8')) as string[]).filter(
          (module) =>
            module.includes('/@opentelemetry/') && !module.includes('/@opentelemetry/api/'),
        )
      expect(loaded('api')).toEqual([])
      // (The probe does see the SDK where tracing is on.)
      expect(loaded('traced-cache').some((m) => m.includes('/sdk-trace-base/'))).toBe(true)
    } finally {
      rmSync(workdir, { recursive: true, force: true })
    }
  })
})
