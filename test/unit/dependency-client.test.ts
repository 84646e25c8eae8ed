import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { StringDecoder } from 'node:string_decoder'
import { TRPCError } from '@trpc/server'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { DependencyCallError, RemoteProcedureError } from '../../framework/client/call-errors.js'
import {
  DependencyClient,
  type DependencyClientOptions,
} from '../../framework/client/dependency-client.js'
import { HttpTransport } from '../../framework/client/http-transport.js'
import { RetryBudget } from '../../framework/client/retry-budget.js'
import { resolveCallAuth } from '../../framework/config/call-auth.js'
import { createBalancer } from '../../framework/discovery/balancers/index.js'
import { Endpoint } from '../../framework/discovery/endpoint.js'
import type { Resolver, ResolverUpdate } from '../../framework/discovery/resolver.js'
import { markTokenRefused } from '../../framework/protocol/call-token.js'
import { DEADLINE_HEADER } from '../../framework/protocol/headers.js'
import { OVERLOADED_DATA } from '../../framework/protocol/overload.js'
import { instanceKey, type PhoneBookRecord } from '../../framework/registry/record.js'
import { callTokensFor } from '../../framework/security/call-tokens.js'
import { ClientMetrics } from '../../framework/telemetry/client-metrics.js'

const ROLE = 'cache'
const NAMESPACE = 'shop'
const ETCD = ['http://127.0.0.1:2379']
const PROCEDURES: PhoneBookRecord['procedures'] = { get: 'query', set: 'mutation' }
const log = pino({ level: 'silent' })

/** The phone book, as a fixed (but mutable) list: no etcd. */
class StaticResolver implements Resolver {
  readonly role = ROLE
  stale = false
  listed = true
  lastError: string | undefined = undefined
  listing: (timeoutMs: number) => Promise<void> = async () => undefined

  constructor(public endpoints: Endpoint[]) {}

  whenListed(timeoutMs: number): Promise<void> {
    return this.listing(timeoutMs)
  }

  subscribe(_listener: (update: ResolverUpdate) => void): () => void {
    return () => undefined
  }

  async close(): Promise<void> {}
}

/** What a test server saw of one call, on either transport. */
interface SeenRequest {
  /** How it came: a request of its own (or a batch item), or a frame on the RPC stream. */
  via: 'request' | 'stream'
  kind: 'query' | 'mutation'
  path: string
  input: unknown
  /** The deadline the call carried: the x-deadline-ms header, or the frame's last field. */
  deadlineMs: number | undefined
  /** Requests only: method and headers. */
  method?: string
  headers?: IncomingHttpHeaders
}

/**
 * How a test server treats a call, after reading all of it: answer as tRPC does (`ok`),
 * answer a fixed status and body, never answer (`hang`), or drop the connection (`destroy`).
 */
type Behaviour = 'ok' | 'hang' | 'destroy' | { status: number; body: unknown } | { delayMs: number }

interface TestServer {
  name: string
  url: string
  requests: SeenRequest[]
  endpoint: Endpoint
}

/** The transports every test runs on: requests (a peer in another language) and the RPC stream. */
const TRANSPORTS = [
  { name: 'requests', stream: false },
  { name: 'the RPC stream', stream: true },
] as const

let servers: Server[] = []
/** Upgraded stream connections of the test servers (the http server no longer tracks them). */
let streamSockets: Socket[] = []
let transport: HttpTransport
/** The calls each test server saw, for the per-transport check after each test. */
const seenBy: SeenRequest[][] = []

afterEach(async () => {
  await transport.close()
  for (const socket of streamSockets) socket.destroy()
  streamSockets = []
  seenBy.length = 0
  await Promise.all(
    servers.map((server) => {
      server.closeAllConnections()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    }),
  )
  servers = []
})

function tRPCError(message: string, code: string, httpStatus: number) {
  const numeric: Record<string, number> = {
    BAD_REQUEST: -32600,
    INTERNAL_SERVER_ERROR: -32603,
    SERVICE_UNAVAILABLE: -32603,
  }
  return { error: { message, code: numeric[code] ?? -32603, data: { code, httpStatus } } }
}

/** What a service over FRAMEWORK_MAX_INFLIGHT answers (runtime/overload.ts). */
function shedBody() {
  const body = tRPCError(
    'instance over its in-flight limit (2 calls, FRAMEWORK_MAX_INFLIGHT); the call did not run',
    'SERVICE_UNAVAILABLE',
    503,
  )
  return { error: { ...body.error, data: { ...body.error.data, ...OVERLOADED_DATA } } }
}

function record(id: string, url: string): PhoneBookRecord {
  return {
    v: 1,
    role: ROLE,
    id,
    url,
    version: '1.0.0',
    contract: 'c',
    procedures: PROCEDURES,
    load: { inflight: 0, eventLoopDelayMs: 0, cpu: 0, rss: 1 },
    startedAt: new Date(0).toISOString(),
    host: '127.0.0.1',
    pid: 1,
  }
}

function endpointAt(id: string, url: string): Endpoint {
  return new Endpoint(instanceKey(NAMESPACE, ROLE, id), record(id, url))
}

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return (server.address() as AddressInfo).port
}

/**
 * A local server speaking tRPC's HTTP shapes and the RPC stream (runtime/rpc-stream.ts: upgrade,
 * then `[id, path, kind, input, deadlineMs]` frames in, `[id, status, body]` out); answers
 * `{ served, path, input }` when `ok`. A probe frame (empty path) is answered as the runtime does.
 */
async function serve(name: string, behaviour: Behaviour = 'ok'): Promise<TestServer> {
  const requests: SeenRequest[] = []
  seenBy.push(requests)
  const ok = (path: string, input: unknown) => ({ result: { data: { served: name, path, input } } })
  /** Answers one call per `behaviour`; `drop` ends its connection. */
  const answer = (
    path: string,
    input: unknown,
    reply: (status: number, body: unknown) => void,
    drop: () => void,
  ) => {
    if (behaviour === 'hang') return
    if (behaviour === 'destroy') drop()
    else if (behaviour === 'ok') reply(200, ok(path, input))
    else if ('delayMs' in behaviour)
      setTimeout(() => reply(200, ok(path, input)), behaviour.delayMs)
    else reply(behaviour.status, behaviour.body)
  }
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1')
      const path = url.pathname.replace(/^\/_rpc\//, '')
      const raw =
        req.method === 'GET' ? url.searchParams.get('input') : Buffer.concat(chunks).toString()
      const input = raw ? (JSON.parse(raw) as unknown) : undefined
      const deadline = req.headers[DEADLINE_HEADER]
      requests.push({
        via: 'request',
        kind: req.method === 'GET' ? 'query' : 'mutation',
        path,
        input,
        deadlineMs: deadline === undefined ? undefined : Number(deadline),
        method: req.method ?? '',
        headers: req.headers,
      })
      answer(
        path,
        input,
        (status, body) => {
          res.writeHead(status, { 'content-type': 'application/json' })
          res.end(typeof body === 'string' ? body : JSON.stringify(body))
        },
        () => req.socket.destroy(),
      )
    })
  })
  server.on('upgrade', (_req, socket: Socket) => {
    streamSockets.push(socket)
    socket.on('error', () => undefined)
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nupgrade: framework-rpc/1\r\nconnection: upgrade\r\n\r\n',
    )
    let buffered = ''
    const decoder = new StringDecoder('utf8')
    socket.on('data', (chunk: Buffer) => {
      buffered += decoder.write(chunk)
      for (let newline = buffered.indexOf('\n'); newline !== -1; newline = buffered.indexOf('\n')) {
        const [id, path, kind, input, deadline] = JSON.parse(buffered.slice(0, newline)) as [
          number,
          string,
          'query' | 'mutation',
          unknown,
          number | null,
        ]
        buffered = buffered.slice(newline + 1)
        const reply = (status: number, body: unknown) => {
          if (!socket.destroyed) socket.write(`${JSON.stringify([id, status, body])}\n`)
        }
        // A liveness probe: any answer says the connection is alive (the runtime's is a 404).
        if (path === '') {
          reply(404, tRPCError('no procedure', 'NOT_FOUND', 404))
          continue
        }
        requests.push({ via: 'stream', kind, path, input, deadlineMs: deadline ?? undefined })
        answer(path, input, reply, () => socket.destroy())
      }
    })
  })
  servers.push(server)
  const port = await listen(server)
  const url = `http://127.0.0.1:${port}`
  return { name, url, requests, endpoint: endpointAt(name, url) }
}

/** The URL of a port that was just open and is now closed: connections are refused. */
async function refusedEndpoint(id: string): Promise<Endpoint> {
  const server = createServer()
  const port = await listen(server)
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return endpointAt(id, `http://127.0.0.1:${port}`)
}

function makeClient(endpoints: Endpoint[], options: Partial<DependencyClientOptions> = {}) {
  const resolver = new StaticResolver(endpoints)
  const client = new DependencyClient({
    role: ROLE,
    namespace: NAMESPACE,
    etcdEndpoints: ETCD,
    resolver,
    transport,
    balancer: createBalancer('round-robin'),
    budget: new RetryBudget(),
    timeoutMs: 5_000,
    log,
    ...options,
  })
  return { client, resolver }
}

/** The error a call rejects with (fails the test if it resolves). */
async function rejection(call: Promise<unknown>): Promise<unknown> {
  try {
    await call
  } catch (err) {
    return err
  }
  throw new Error('expected the call to reject')
}

async function callFailure(call: Promise<unknown>): Promise<DependencyCallError> {
  const err = await rejection(call)
  expect(err).toBeInstanceOf(DependencyCallError)
  expect(err).toBeInstanceOf(TRPCError)
  return err as DependencyCallError
}

/** Keeps an instance out of rotation, so the balancer has to pick the others. */
function ejectForAMinute(endpoint: Endpoint): void {
  endpoint.ejectedUntil = Date.now() + 60_000
}

for (const { name: via, stream } of TRANSPORTS) {
  describe(`over ${via}`, () => {
    beforeEach(() => {
      transport = new HttpTransport({ stream })
    })

    afterEach(() => {
      // Every call reached the servers the way this block is about (no silent fall-back).
      const seen = seenBy.splice(0).flatMap((requests) => requests.map((r) => r.via))
      expect(seen.filter((v) => v !== (stream ? 'stream' : 'request'))).toEqual([])
    })

    describe('DependencyClient: success', () => {
      it('sends a query with its input and returns result.data', async () => {
        const a = await serve('a')
        const { client } = makeClient([a.endpoint])
        await expect(client.call('get', { key: 'k1' })).resolves.toEqual({
          served: 'a',
          path: 'get',
          input: { key: 'k1' },
        })
        expect(a.requests.map((r) => r.kind)).toEqual(['query'])
        expect(a.endpoint.calls).toBe(1)
        expect(a.endpoint.inflight).toBe(0)
      })

      it('sends a mutation with its input', async () => {
        const a = await serve('a')
        const { client } = makeClient([a.endpoint])
        await expect(client.call('set', { key: 'k', value: 1 })).resolves.toEqual({
          served: 'a',
          path: 'set',
          input: { key: 'k', value: 1 },
        })
        expect(a.requests.map((r) => r.kind)).toEqual(['mutation'])
      })

      it('spreads calls over the instances (round-robin)', async () => {
        const a = await serve('a')
        const b = await serve('b')
        const { client } = makeClient([a.endpoint, b.endpoint])
        for (let i = 0; i < 6; i++) await client.call('get', { i })
        expect(a.requests).toHaveLength(3)
        expect(b.requests).toHaveLength(3)
      })
    })

    describe('DependencyClient: connection refused', () => {
      it('(a) retries a query on another instance and ejects the dead one', async () => {
        const dead = await refusedEndpoint('dead')
        const alive = await serve('alive')
        const { client } = makeClient([dead, alive.endpoint])
        // Round-robin over two: within two calls the dead one is picked first at least once.
        for (let i = 0; i < 2; i++) {
          await expect(client.call('get', { i })).resolves.toMatchObject({ served: 'alive' })
        }
        expect(alive.requests).toHaveLength(2)
        expect(dead.ejectedUntil).toBeGreaterThan(Date.now())
        expect(dead.ejections).toBe(1)
        expect(alive.endpoint.ejectedUntil).toBe(0)
        expect(dead.inflight).toBe(0)
      })

      it('(b) retries a mutation (never sent) on another instance', async () => {
        const dead = await refusedEndpoint('dead')
        const alive = await serve('alive')
        const { client } = makeClient([dead, alive.endpoint])
        for (let i = 0; i < 2; i++) {
          await expect(client.call('set', { i })).resolves.toMatchObject({
            served: 'alive',
            input: { i },
          })
        }
        expect(alive.requests.map((r) => r.kind)).toEqual(['mutation', 'mutation'])
        expect(dead.ejectedUntil).toBeGreaterThan(Date.now())
      })

      it('fails with unreachable after 2 retries when the only instance refuses', async () => {
        const dead = await refusedEndpoint('dead')
        const { client } = makeClient([dead])
        const err = await callFailure(client.call('get', {}))
        expect(err.failure).toBe('unreachable')
        expect(err.code).toBe('BAD_GATEWAY')
        expect(err.message).toContain(`${ROLE}.get`)
        expect(err.message).toContain(dead.url)
        expect(err.message).toContain('ECONNREFUSED')
        expect(err.message).toContain('after 2 retries')
      })

      it('does not retry once the retry budget is spent', async () => {
        const dead = await refusedEndpoint('dead')
        const alive = await serve('alive')
        ejectForAMinute(alive.endpoint)
        const { client } = makeClient([dead, alive.endpoint], { budget: new RetryBudget(0.2, 0) })
        const err = await callFailure(client.call('get', {}))
        expect(err.failure).toBe('unreachable')
        expect(err.message).not.toContain('retr')
        expect(alive.requests).toHaveLength(0)
      })
    })

    describe('DependencyClient: 401s during a secret rotation', () => {
      const unauthorized = {
        error: { message: 'no', code: -32001, data: { code: 'UNAUTHORIZED', httpStatus: 401 } },
      }
      // Both secrets, as every process has during a rotation.
      const tokens = () =>
        callTokensFor(
          resolveCallAuth({
            FRAMEWORK_SECRET: 'n'.repeat(40),
            FRAMEWORK_SECRET_PREVIOUS: 'o'.repeat(40),
          }),
          'tester',
          NAMESPACE,
        )

      it("a procedure's own 401 (no token-refusal marker) is not sent again: it ran", async () => {
        const guarded = await serve('guarded', { status: 401, body: unauthorized })
        const { client } = makeClient([guarded.endpoint], { tokens: tokens() })
        const err = await rejection(client.call('set', { key: 'once' }))
        expect(err).toBeInstanceOf(RemoteProcedureError)
        expect((err as RemoteProcedureError).code).toBe('UNAUTHORIZED')
        expect(guarded.requests).toHaveLength(1)
      })

      it('a refused token is sent again once, signed with the previous secret', async () => {
        const old = await serve('old', { status: 401, body: markTokenRefused(unauthorized) })
        const { client } = makeClient([old.endpoint], { tokens: tokens() })
        const err = await rejection(client.call('set', { key: 'twice' }))
        expect((err as RemoteProcedureError).code).toBe('UNAUTHORIZED')
        // (Over the stream the previous-signed token goes ahead of the call in an `_auth` frame.)
        expect(old.requests.filter((request) => request.path === 'set')).toHaveLength(2)
      })
    })

    describe('DependencyClient: request sent, no answer', () => {
      it('(c) does not retry a mutation whose connection dropped after it was sent', async () => {
        const dropper = await serve('dropper', 'destroy')
        const alive = await serve('alive')
        // The only healthy candidate is the dropper; a (wrong) retry would fall back to `alive`.
        ejectForAMinute(alive.endpoint)
        const { client } = makeClient([dropper.endpoint, alive.endpoint])
        const err = await callFailure(client.call('set', { key: 'once' }))
        expect(err.failure).toBe('unreachable')
        expect(err.code).toBe('BAD_GATEWAY')
        expect(err.message).toContain(`${ROLE}.set`)
        expect(dropper.requests).toHaveLength(1)
        expect(dropper.requests[0]!.input).toEqual({ key: 'once' })
        expect(alive.requests).toHaveLength(0)
      })

      it('does retry a query whose connection dropped', async () => {
        const dropper = await serve('dropper', 'destroy')
        const alive = await serve('alive')
        ejectForAMinute(alive.endpoint)
        const { client } = makeClient([dropper.endpoint, alive.endpoint])
        await expect(client.call('get', { key: 'k' })).resolves.toMatchObject({ served: 'alive' })
        expect(dropper.requests).toHaveLength(1)
        expect(alive.requests).toHaveLength(1)
      })
    })

    describe('DependencyClient: metrics', () => {
      /** A client whose role's series live in a fresh registry; `value(name)` reads one. */
      function measuredClient(endpoints: Endpoint[], budget = new RetryBudget()) {
        const registry = new Registry()
        const metrics = new ClientMetrics(registry).forRole(ROLE, () => true)
        budget.onExhausted = () => metrics.budgetExhausted()
        const { client } = makeClient(endpoints, { metrics, budget })
        const value = async (name: string) => {
          const found = await registry.getSingleMetric(name)?.get()
          // A histogram's samples: only its count (of observations).
          const values = found!.values as { value: number; metricName?: string }[]
          return values
            .filter((sample) => !sample.metricName || sample.metricName === `${name}_count`)
            .reduce((sum, sample) => sum + sample.value, 0)
        }
        return { client, value }
      }

      it('counts each attempt, the retry after a 503 and the ejection of the instance that sent it', async () => {
        const busy = await serve('busy', {
          status: 503,
          body: tRPCError('overloaded', 'SERVICE_UNAVAILABLE', 503),
        })
        const alive = await serve('alive')
        const { client, value } = measuredClient([busy.endpoint, alive.endpoint])
        for (let i = 0; i < 2; i++) await client.call('get', { i })
        expect(await value('framework_client_retries_total')).toBe(1)
        expect(await value('framework_client_ejections_total')).toBe(1)
        expect(await value('framework_client_reroutes_total')).toBe(0)
        // busy once, alive twice.
        expect(await value('framework_client_attempt_duration_seconds')).toBe(3)
        expect(await value('framework_client_retry_budget_exhausted_total')).toBe(0)
      })

      it('counts a retry refused for want of budget, and a reroute that spends none', async () => {
        const dead = await refusedEndpoint('dead')
        const alive = await serve('alive')
        ejectForAMinute(alive.endpoint)
        const spent = measuredClient([dead, alive.endpoint], new RetryBudget(0.2, 0))
        await callFailure(spent.client.call('get', {}))
        expect(await spent.value('framework_client_retry_budget_exhausted_total')).toBe(1)
        expect(await spent.value('framework_client_retries_total')).toBe(0)

        // A refused connection with a healthy instance left: rerouted, not retried.
        const dead2 = await refusedEndpoint('dead2')
        const alive2 = await serve('alive2')
        const rerouting = measuredClient([dead2, alive2.endpoint])
        for (let i = 0; i < 2; i++) await rerouting.client.call('get', { i })
        expect(await rerouting.value('framework_client_reroutes_total')).toBe(1)
        expect(await rerouting.value('framework_client_retries_total')).toBe(0)
        expect(await rerouting.value('framework_client_ejections_total')).toBe(1)
      })
    })

    describe('DependencyClient: 5xx answers', () => {
      it('(d) retries a query answered 503 on another instance and ejects the 503 one', async () => {
        const busy = await serve('busy', {
          status: 503,
          body: tRPCError('overloaded', 'SERVICE_UNAVAILABLE', 503),
        })
        const alive = await serve('alive')
        const { client } = makeClient([busy.endpoint, alive.endpoint])
        for (let i = 0; i < 2; i++) {
          await expect(client.call('get', { i })).resolves.toMatchObject({ served: 'alive' })
        }
        expect(busy.requests).toHaveLength(1)
        expect(alive.requests).toHaveLength(2)
        expect(busy.endpoint.ejectedUntil).toBeGreaterThan(Date.now())
      })

      it('(d) does not retry a query answered 500, but ejects that instance', async () => {
        const broken = await serve('broken', {
          status: 500,
          body: tRPCError('kaput', 'INTERNAL_SERVER_ERROR', 500),
        })
        const alive = await serve('alive')
        const { client } = makeClient([broken.endpoint, alive.endpoint])
        // Two calls: round-robin sends one of them to `broken` first, whichever the order.
        const results = []
        for (let i = 0; i < 2; i++)
          results.push(await client.call('get', { i }).catch((err) => err))
        const errors = results.filter((result) => result instanceof Error)
        expect(errors).toHaveLength(1)
        const err = errors[0] as RemoteProcedureError
        expect(err).toBeInstanceOf(RemoteProcedureError)
        expect(err.code).toBe('INTERNAL_SERVER_ERROR')
        expect(err.message).toMatch(/^cache\.get \(instance broken\): kaput$/)
        expect(broken.requests).toHaveLength(1)
        expect(alive.requests).toHaveLength(1)
        expect(broken.endpoint.ejectedUntil).toBeGreaterThan(Date.now())
      })

      it('does not retry a mutation answered 503', async () => {
        const busy = await serve('busy', {
          status: 503,
          body: tRPCError('overloaded', 'SERVICE_UNAVAILABLE', 503),
        })
        const alive = await serve('alive')
        const { client } = makeClient([busy.endpoint, alive.endpoint])
        const results = []
        for (let i = 0; i < 2; i++)
          results.push(await client.call('set', { i }).catch((err) => err))
        const errors = results.filter((result) => result instanceof Error)
        expect(errors).toHaveLength(1)
        expect(errors[0]).toBeInstanceOf(RemoteProcedureError)
        expect((errors[0] as RemoteProcedureError).code).toBe('SERVICE_UNAVAILABLE')
        expect(busy.requests).toHaveLength(1)
        expect(alive.requests).toHaveLength(1)
      })

      it('retries a shed mutation (503 marked "not run") on another instance, without ejecting', async () => {
        const full = await serve('full', { status: 503, body: shedBody() })
        const alive = await serve('alive')
        const { client } = makeClient([full.endpoint, alive.endpoint])
        for (let i = 0; i < 2; i++) {
          await expect(client.call('set', { i })).resolves.toMatchObject({ served: 'alive' })
        }
        expect(full.requests).toHaveLength(1)
        expect(alive.requests).toHaveLength(2)
        // Alive and answering at once: it stays in rotation.
        expect(full.endpoint.ejectedUntil).toBe(0)
      })

      it('does not resend a shed call to the one instance there is: its 503 reaches the caller', async () => {
        const full = await serve('full', { status: 503, body: shedBody() })
        const { client } = makeClient([full.endpoint])
        const err = await rejection(client.call('get', {}))
        expect(err).toBeInstanceOf(RemoteProcedureError)
        expect((err as RemoteProcedureError).code).toBe('SERVICE_UNAVAILABLE')
        expect((err as Error).message).toMatch(
          /^cache\.get \(instance full\): instance over its in-flight limit/,
        )
        expect(full.requests).toHaveLength(1)
      })

      it('reports a 5xx without a tRPC body as INTERNAL_SERVER_ERROR naming the status', async () => {
        const proxy = await serve('proxy', { status: 502, body: '<html>bad gateway</html>' })
        const { client } = makeClient([proxy.endpoint])
        const err = await rejection(client.call('set', {}))
        expect(err).toBeInstanceOf(RemoteProcedureError)
        expect((err as RemoteProcedureError).code).toBe('INTERNAL_SERVER_ERROR')
        expect((err as RemoteProcedureError).remote.httpStatus).toBe(502)
        expect((err as Error).message).toContain('HTTP 502 without a tRPC error body')
      })
    })

    describe('DependencyClient: deadlines', () => {
      it('(e) a call to a server that never answers times out within about timeoutMs', async () => {
        const silent = await serve('silent', 'hang')
        const { client } = makeClient([silent.endpoint])
        const timeoutMs = 600
        const started = performance.now()
        const err = await callFailure(client.call('get', {}, { timeoutMs }))
        const elapsed = performance.now() - started
        expect(err.failure).toBe('timeout')
        expect(err.code).toBe('TIMEOUT')
        expect(err.message).toContain(`${ROLE}.get`)
        expect(err.message).toContain(`${timeoutMs} ms`)
        expect(elapsed).toBeGreaterThanOrEqual(timeoutMs - 50)
        // The call's own deadline, not the client-wide 5 s (how fast is not this test's business).
        expect(elapsed).toBeLessThan(5_000)
        expect(silent.endpoint.inflight).toBe(0)
      })

      it('(e) a mutation times out after one attempt', async () => {
        const silent = await serve('silent', 'hang')
        const { client } = makeClient([silent.endpoint])
        const started = performance.now()
        const err = await callFailure(client.call('set', {}, { timeoutMs: 400 }))
        expect(err.failure).toBe('timeout')
        expect(err.code).toBe('TIMEOUT')
        expect(performance.now() - started).toBeLessThan(5_000)
        expect(silent.requests).toHaveLength(1)
      })

      it('uses the client-wide timeoutMs when the call sets none', async () => {
        const silent = await serve('silent', 'hang')
        const { client } = makeClient([silent.endpoint], { timeoutMs: 300 })
        const started = performance.now()
        const err = await callFailure(client.call('set', {}))
        expect(err.failure).toBe('timeout')
        expect(err.message).toContain('300 ms')
        expect(performance.now() - started).toBeLessThan(5_000)
      })

      it('retries a query whose attempt timed out on another instance', async () => {
        const silent = await serve('silent', 'hang')
        const alive = await serve('alive')
        const { client } = makeClient([silent.endpoint, alive.endpoint])
        for (let i = 0; i < 2; i++) {
          await expect(client.call('get', { i }, { timeoutMs: 900 })).resolves.toMatchObject({
            served: 'alive',
          })
        }
        expect(silent.requests.length).toBeGreaterThanOrEqual(1)
        expect(alive.requests).toHaveLength(2)
      })

      it('(i) sends the remaining deadline with the call, at most timeoutMs', async () => {
        const a = await serve('a')
        const { client } = makeClient([a.endpoint])
        await client.call('get', {}, { timeoutMs: 5_000 })
        await client.call('set', {}, { timeoutMs: 2_000 })
        const [query, mutation] = a.requests.map((r) => r.deadlineMs)
        expect(query).toBeGreaterThan(4_000)
        expect(query).toBeLessThanOrEqual(5_000)
        expect(mutation).toBeGreaterThan(1_000)
        expect(mutation).toBeLessThanOrEqual(2_000)
      })

      it('caps the deadline by the parent deadline', async () => {
        const a = await serve('a')
        const { client } = makeClient([a.endpoint])
        await client.call('get', {}, { timeoutMs: 5_000 }, Date.now() + 800)
        const sent = a.requests[0]!.deadlineMs
        expect(sent).toBeGreaterThan(0)
        expect(sent).toBeLessThanOrEqual(800)
      })

      it('fails at once with TIMEOUT when the parent deadline has passed', async () => {
        const a = await serve('a')
        const { client } = makeClient([a.endpoint])
        const err = await callFailure(client.call('get', {}, undefined, Date.now() - 1))
        expect(err.failure).toBe('timeout')
        expect(a.requests).toHaveLength(0)
      })

      // A query's attempt is capped at timeoutMs / 3 only when a retry elsewhere could follow: a
      // single healthy instance answering in 700 ms under a 1.5 s deadline gets one copy, and answers.
      it('a query slower than timeoutMs / 3 but within timeoutMs succeeds', async () => {
        const slow = await serve('slow', { delayMs: 700 })
        const { client } = makeClient([slow.endpoint])
        await expect(client.call('get', {}, { timeoutMs: 1_500 })).resolves.toMatchObject({
          served: 'slow',
        })
        expect(slow.requests).toHaveLength(1)
      })
    })

    describe('DependencyClient: nothing to call', () => {
      it('(f) fails at once with SERVICE_UNAVAILABLE when no instance is known', async () => {
        const { client } = makeClient([])
        const started = performance.now()
        const err = await callFailure(client.call('get', {}))
        // At once: not after the 5 s deadline (bench/call-overhead measures how fast).
        expect(performance.now() - started).toBeLessThan(2_500)
        expect(err.failure).toBe('no-instance')
        expect(err.code).toBe('SERVICE_UNAVAILABLE')
        expect(err.message).toContain("no live instance of role 'cache'")
        expect(err.message).toContain("namespace 'shop'")
        expect(err.message).toContain(ETCD[0])
      })

      it('says when the phone book is unreachable as well', async () => {
        const { client, resolver } = makeClient([])
        resolver.stale = true
        resolver.lastError = 'connect ECONNREFUSED 127.0.0.1:2379'
        const err = await callFailure(client.call('get', {}))
        expect(err.message).toContain('etcd unreachable: connect ECONNREFUSED 127.0.0.1:2379')
      })

      it('fails with phone-book-unreachable when never listed and etcd already failed', async () => {
        const { client, resolver } = makeClient([])
        resolver.listed = false
        resolver.lastError = 'deadline exceeded'
        const err = await callFailure(client.call('get', {}))
        expect(err.failure).toBe('phone-book-unreachable')
        expect(err.code).toBe('SERVICE_UNAVAILABLE')
        expect(err.message).toContain("cannot find role 'cache'")
        expect(err.message).toContain('deadline exceeded')
      })

      it('waits for the first listing, bounded by the deadline', async () => {
        const a = await serve('a')
        const { client, resolver } = makeClient([])
        resolver.listed = false
        const budgets: number[] = []
        resolver.listing = async (timeoutMs) => {
          budgets.push(timeoutMs)
          resolver.endpoints = [a.endpoint]
          resolver.listed = true
        }
        await expect(client.call('get', {}, { timeoutMs: 2_000 })).resolves.toMatchObject({
          served: 'a',
        })
        expect(budgets).toHaveLength(1)
        expect(budgets[0]).toBeLessThanOrEqual(2_000)
      })

      it('turns a failed wait for the listing into phone-book-unreachable', async () => {
        const { client, resolver } = makeClient([])
        resolver.listed = false
        resolver.listing = async () => {
          throw new Error('etcd at http://127.0.0.1:2379 did not answer')
        }
        const err = await callFailure(client.call('get', {}))
        expect(err.failure).toBe('phone-book-unreachable')
        expect(err.message).toContain('did not answer')
      })

      it('(g) fails with NOT_FOUND naming an unknown procedure, without sending anything', async () => {
        const a = await serve('a')
        const { client } = makeClient([a.endpoint])
        const err = await callFailure(client.call('admin.flush', {}))
        expect(err.failure).toBe('unknown-procedure')
        expect(err.code).toBe('NOT_FOUND')
        expect(err.message).toContain("'admin.flush'")
        expect(err.message).toContain("role 'cache'")
        expect(err.message).toContain('get, set')
        expect(a.requests).toHaveLength(0)
      })

      it('calls only instances that serve the procedure', async () => {
        const old = await serve('old')
        old.endpoint.record = { ...old.endpoint.record, procedures: { get: 'query' } }
        const current = await serve('current')
        current.endpoint.record = {
          ...current.endpoint.record,
          procedures: { ...PROCEDURES, 'admin.flush': 'mutation' },
        }
        const { client } = makeClient([old.endpoint, current.endpoint])
        for (let i = 0; i < 3; i++) {
          await expect(client.call('admin.flush', {})).resolves.toMatchObject({ served: 'current' })
        }
        expect(old.requests).toHaveLength(0)
      })
    })

    describe('DependencyClient: remote errors', () => {
      it('(h) rethrows a remote tRPC error with its code, prefixed with role.path', async () => {
        const a = await serve('a', {
          status: 400,
          body: tRPCError('key must not be empty', 'BAD_REQUEST', 400),
        })
        const b = await serve('b', {
          status: 400,
          body: tRPCError('key must not be empty', 'BAD_REQUEST', 400),
        })
        const { client } = makeClient([a.endpoint, b.endpoint])
        const err = await rejection(client.call('get', { key: '' }))
        expect(err).toBeInstanceOf(RemoteProcedureError)
        expect(err).toBeInstanceOf(TRPCError)
        const remote = err as RemoteProcedureError
        expect(remote.code).toBe('BAD_REQUEST')
        expect(remote.message.startsWith(`${ROLE}.get`)).toBe(true)
        expect(remote.message).toMatch(/^cache\.get \(instance [ab]\): key must not be empty$/)
        expect(remote.remote).toMatchObject({ code: 'BAD_REQUEST', httpStatus: 400 })
        // A 4xx is an answer: no retry, no ejection.
        expect(a.requests.length + b.requests.length).toBe(1)
        expect(a.endpoint.ejectedUntil).toBe(0)
        expect(b.endpoint.ejectedUntil).toBe(0)
      })

      it('maps an unknown remote code to INTERNAL_SERVER_ERROR', async () => {
        const a = await serve('a', { status: 418, body: tRPCError('teapot', 'I_AM_A_TEAPOT', 418) })
        const { client } = makeClient([a.endpoint])
        const err = (await rejection(client.call('get', {}))) as RemoteProcedureError
        expect(err).toBeInstanceOf(RemoteProcedureError)
        expect(err.code).toBe('INTERNAL_SERVER_ERROR')
        expect(err.remote.code).toBe('I_AM_A_TEAPOT')
      })
    })

    describe('DependencyClient: passive health', () => {
      it('(j) never ejects the only instance', async () => {
        const dead = await refusedEndpoint('dead')
        const { client } = makeClient([dead])
        await callFailure(client.call('get', {}))
        expect(dead.ejectedUntil).toBe(0)
        expect(dead.ejections).toBe(0)
      })

      it('(j) never ejects the last healthy instance, and still reaches an ejected one', async () => {
        const dead = await refusedEndpoint('dead')
        const spare = await serve('spare')
        ejectForAMinute(spare.endpoint)
        const { client } = makeClient([spare.endpoint, dead])
        await expect(client.call('get', {})).resolves.toMatchObject({ served: 'spare' })
        expect(dead.ejectedUntil).toBe(0)
      })

      it('(j) does not eject the only instance on a 500 either', async () => {
        const broken = await serve('broken', {
          status: 500,
          body: tRPCError('kaput', 'INTERNAL_SERVER_ERROR', 500),
        })
        const { client } = makeClient([broken.endpoint])
        await rejection(client.call('get', {}))
        expect(broken.endpoint.ejectedUntil).toBe(0)
      })

      it('pick() prefers healthy instances and falls back to all', async () => {
        const a = endpointAt('a', 'http://127.0.0.1:1')
        const b = endpointAt('b', 'http://127.0.0.1:2')
        const { client, resolver } = makeClient([a, b])
        ejectForAMinute(a)
        for (let i = 0; i < 4; i++) expect(client.pick()).toBe(b)
        ejectForAMinute(b)
        expect([a, b]).toContain(client.pick())
        resolver.endpoints = []
        expect(client.pick()).toBeUndefined()
      })
    })

    describe('DependencyClient: abort', () => {
      it("(k) fails with 'aborted' when the caller's signal aborts, without retrying", async () => {
        const one = await serve('one', 'hang')
        const two = await serve('two', 'hang')
        const { client } = makeClient([one.endpoint, two.endpoint])
        const controller = new AbortController()
        const timer = setTimeout(() => controller.abort(), 100)
        const started = performance.now()
        try {
          const err = await callFailure(
            client.call('get', {}, { timeoutMs: 5_000, signal: controller.signal }),
          )
          expect(err.failure).toBe('aborted')
          expect(err.code).toBe('CLIENT_CLOSED_REQUEST')
          expect(err.message).toContain(`${ROLE}.get`)
        } finally {
          clearTimeout(timer)
        }
        expect(performance.now() - started).toBeLessThan(5_000)
        expect(one.requests.length + two.requests.length).toBe(1)
        expect(one.endpoint.ejectedUntil + two.endpoint.ejectedUntil).toBe(0)
      })

      it("(k) fails with 'aborted' when the signal is already aborted", async () => {
        const a = await serve('a')
        const { client } = makeClient([a.endpoint])
        const err = await callFailure(client.call('set', {}, { signal: AbortSignal.abort() }))
        expect(err.failure).toBe('aborted')
        expect(a.requests).toHaveLength(0)
      })
    })

    describe('DependencyClient: hash balancer', () => {
      const byKey = createBalancer({
        hash: ({ input }) => (input as { key?: string } | undefined)?.key,
      })

      it('sends every call for a key to one instance, and a failed query to the next in the key order', async () => {
        const servers = await Promise.all(['a', 'b', 'c'].map((name) => serve(name)))
        const { client } = makeClient(
          servers.map((s) => s.endpoint),
          { balancer: byKey },
        )
        const keys = Array.from({ length: 30 }, (_, i) => `k${i}`)
        const owner = new Map<string, string>()
        for (const key of keys) {
          const first = (await client.call('get', { key })) as { served: string }
          const again = (await client.call('set', { key, value: 1 })) as { served: string }
          expect(again.served).toBe(first.served)
          owner.set(key, first.served)
        }
        expect(new Set(owner.values()).size).toBe(3)
        // The owner of k0 refuses connections from now on: its keys' queries go to their next
        // instance, the other keys stay where they were.
        const dead = servers.find((s) => s.name === owner.get('k0'))!
        dead.endpoint.record = { ...dead.endpoint.record, url: (await refusedEndpoint('x')).url }
        for (const key of keys) {
          const answer = (await client.call('get', { key })) as { served: string }
          if (owner.get(key) === dead.name) expect(answer.served).not.toBe(dead.name)
          else expect(answer.served).toBe(owner.get(key))
        }
      })

      it('a hash function that throws fails the call with BAD_REQUEST naming the dependency and the balancer', async () => {
        const a = await serve('a')
        const b = await serve('b')
        const { client } = makeClient([a.endpoint, b.endpoint], {
          balancer: createBalancer({
            hash: ({ input }) => (input as { key: { id: string } }).key.id,
          }),
        })
        const err = await callFailure(client.call('get', { name: 'no key' }))
        expect(err.failure).toBe('bad-hash-key')
        expect(err.code).toBe('BAD_REQUEST')
        expect(err.message).toMatch(
          /^cache\.get: the hash balancer of dependency 'cache' cannot route this call: the hash function threw: .*deps\.cache\.balancer\.hash must return a string/,
        )
        expect(a.requests).toHaveLength(0)
        expect(b.requests).toHaveLength(0)
      })
    })
  })
}

describe('DependencyClient over requests: the wire', () => {
  beforeEach(() => {
    transport = new HttpTransport({ stream: false })
  })

  it('a query is a GET with ?input, a mutation a POST with a JSON body, the deadline in x-deadline-ms', async () => {
    const a = await serve('a')
    const { client } = makeClient([a.endpoint])
    await client.call('get', { key: 'k1' }, { timeoutMs: 5_000 })
    await client.call('set', { key: 'k', value: 1 }, { timeoutMs: 2_000 })
    expect(a.requests.map((r) => [r.method, r.headers?.['content-type']])).toEqual([
      ['GET', undefined],
      ['POST', 'application/json'],
    ])
    expect(a.requests.map((r) => r.input)).toEqual([{ key: 'k1' }, { key: 'k', value: 1 }])
    const [query, mutation] = a.requests.map((r) => Number(r.headers?.[DEADLINE_HEADER]))
    expect(query).toBeGreaterThan(4_000)
    expect(query).toBeLessThanOrEqual(5_000)
    expect(mutation).toBeGreaterThan(1_000)
    expect(mutation).toBeLessThanOrEqual(2_000)
  })

  it('fails that call as never sent, without crashing, while calls batched with it succeed', async () => {
    const a = await serve('a')
    const { client } = makeClient([a.endpoint])
    const [bad, good] = await Promise.allSettled([
      client.call('get', { n: 1n }),
      client.call('get', { n: 1 }),
    ])
    expect(bad.status).toBe('rejected')
    expect(String((bad as PromiseRejectedResult).reason)).toMatch(
      /the input of get is not JSON: Do not know how to serialize a BigInt/,
    )
    expect(good).toEqual({
      status: 'fulfilled',
      value: { served: 'a', path: 'get', input: { n: 1 } },
    })
    expect(a.requests.map((r) => r.input)).toEqual([{ n: 1 }])
  })
})

// Concurrent calls: on the stream (the request transport batches them, which this server does not speak).
describe('DependencyClient: maxInflight (bulkhead)', () => {
  beforeEach(() => {
    transport = new HttpTransport({ stream: true })
  })

  it('fails the call over the cap at once, naming the role and the limit; calls under it succeed', async () => {
    const slow = await serve('slow', { delayMs: 300 })
    const { client } = makeClient([slow.endpoint], { maxInflight: 3 })
    let settled = 0
    const admitted = [0, 1, 2].map((i) => client.call('get', { i }).finally(() => settled++))
    const err = await callFailure(client.call('get', { i: 3 }))
    // Failed at once: before any admitted call answered, and never sent.
    expect(settled).toBe(0)
    expect(err.failure).toBe('saturated')
    expect(err.code).toBe('SERVICE_UNAVAILABLE')
    expect(err.frameworkCode).toBe('FRAMEWORK_ERR_DEPENDENCY_SATURATED')
    expect(err.message).toBe(
      "cache.get: 3 calls to role 'cache' already in flight, the most deps.cache.maxInflight allows; the call was not sent. Raise deps.cache.maxInflight, add instances of 'cache', or send fewer calls at once",
    )
    await expect(Promise.all(admitted)).resolves.toHaveLength(3)
    // The slots are free again once the calls settled, failed ones included.
    await expect(client.call('get', { i: 4 })).resolves.toMatchObject({ served: 'slow' })
    expect(slow.requests).toHaveLength(4)
  })
})
