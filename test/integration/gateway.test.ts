import { validate } from '@readme/openapi-parser'
import { createTRPCClient, httpBatchLink, httpLink, TRPCClientError } from '@trpc/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { parseSamples, sumSamples } from '../../framework/cli/metrics-text.js'
import { defineGateway, type GatewayRouter } from '../../framework/index.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import { back, front, type ghost, served, startTestGateway } from '../support/gateway-services.js'
import { startInProcess } from '../support/in-process.js'
import { raw } from '../support/raw-request.js'
import { waitFor } from '../support/wait.js'

type AppRouter = GatewayRouter<{
  'gw-front': typeof front
  'gw-back': typeof back
  'gw-ghost': typeof ghost
}>

type ErrorBody = {
  error: {
    message: string
    code: number
    data: {
      code: string
      httpStatus: number
      path?: string
      frameworkCode?: string
      issues?: { path: unknown[] }[]
    }
  }
}

let etcd: EtcdServer
const instances: RunningInstance[] = []
let namespace = 0
const NS = () => `gateway-${++namespace}`
let ns: string

beforeAll(async () => {
  etcd = await EtcdServer.start()
  ns = NS()
  instances.push(await startInProcess(back, etcd.endpoint, ns))
  const frontInstance = await startInProcess(front, etcd.endpoint, ns)
  instances.push(frontInstance)
  await waitFor('front sees back', () =>
    Boolean(frontInstance.deps?.resolvers.get('gw-back')?.endpoints.length),
  )
})

afterAll(async () => {
  for (const instance of instances) await instance.stop()
  await etcd?.dispose()
})

/** Runs `body` against a gateway in this process, stopped afterwards. */
async function withGateway(
  gateway: ReturnType<typeof defineGateway> | undefined,
  body: (url: string) => Promise<void>,
): Promise<void> {
  const running = await startTestGateway(etcd.endpoint, ns, gateway)
  try {
    await waitFor('the gateway sees gw-front', () =>
      Boolean(running.dependencies.resolvers.get('gw-front')?.endpoints.length),
    )
    await body(running.url)
  } finally {
    await running.stop()
  }
}

const input = (value: unknown) => encodeURIComponent(JSON.stringify(value))

async function json(response: Response): Promise<ErrorBody & { result?: { data: unknown } }> {
  return (await response.json()) as ErrorBody & { result?: { data: unknown } }
}

describe('tRPC clients through the gateway', () => {
  it('stock @trpc/client (httpLink and httpBatchLink), typed by GatewayRouter', async () => {
    await withGateway(undefined, async (url) => {
      for (const link of [
        httpLink({ url: `${url}/trpc` }),
        httpBatchLink({ url: `${url}/trpc` }),
      ]) {
        const client = createTRPCClient<AppRouter>({ links: [link] })
        expect(await client['gw-front'].echo.query({ text: 'hi', n: 2 })).toEqual({
          text: 'hi',
          n: 2,
        })
        expect(await client['gw-front'].save.mutate({ text: 'x' })).toEqual({ saved: 'x' })
        expect(await client['gw-front'].nested.ping.query()).toBe('pong')
        // Several calls in one tick: one batch request with httpBatchLink, each answered alone.
        const [a, b, c] = await Promise.allSettled([
          client['gw-front'].echo.query({ text: 'a' }),
          client['gw-front'].echo.query({ text: 'b' }),
          client['gw-front'].echo.query({ text: 1 as unknown as string }),
        ])
        expect(a).toEqual({ status: 'fulfilled', value: { text: 'a' } })
        expect(b).toEqual({ status: 'fulfilled', value: { text: 'b' } })
        expect(c.status).toBe('rejected')
        const error = (c as PromiseRejectedResult).reason as TRPCClientError<AppRouter>
        expect(error).toBeInstanceOf(TRPCClientError)
        expect(error.data?.code).toBe('BAD_REQUEST')
        expect(error.data?.httpStatus).toBe(400)
      }
    })
  })

  it('a batch answers 207 with each call its own body; a mixed batch forwards only what is exposed', async () => {
    await withGateway(undefined, async (url) => {
      const before = { ...served }
      const response = await fetch(
        `${url}/trpc/gw-front.echo,gw-back.who,gw-front.secret?batch=1&input=${input({ 0: { text: 'ok' } })}`,
      )
      expect(response.status).toBe(207)
      const bodies = (await response.json()) as (ErrorBody & { result?: { data: unknown } })[]
      expect(bodies[0]).toEqual({ result: { data: { text: 'ok' } } })
      expect(bodies[1]?.error.data.code).toBe('NOT_FOUND')
      expect(bodies[2]?.error.data.code).toBe('NOT_FOUND')
      expect(served).toEqual({ front: before.front + 1, back: before.back })
    })
  })

  it('plain JSON: GET and POST /api/<role>/<path>, data as the body; errors in tRPC shape', async () => {
    await withGateway(undefined, async (url) => {
      const get = await fetch(`${url}/api/gw-front/echo?input=${input({ text: 'g' })}`)
      expect(get.status).toBe(200)
      expect(await get.json()).toEqual({ text: 'g' })
      const post = await fetch(`${url}/api/gw-front/echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: 'p' }),
      })
      expect(await post.json()).toEqual({ text: 'p' })
      const nested = await fetch(`${url}/api/gw-front/nested/ping`)
      expect(await nested.json()).toBe('pong')
      const mutation = await fetch(`${url}/api/gw-front/save`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"text":"m"}',
      })
      expect(await mutation.json()).toEqual({ saved: 'm' })
      const mutationByGet = await fetch(`${url}/api/gw-front/save?input=${input({ text: 'm' })}`)
      expect(mutationByGet.status).toBe(405)
      const bad = await fetch(`${url}/api/gw-front/echo?input=${input({ text: 5 })}`)
      expect(bad.status).toBe(400)
      expect((await json(bad)).error.data.issues?.[0]?.path).toEqual(['text'])
    })
  })
})

describe('request ids and the caller', () => {
  it('an x-request-id is accepted or made, returned, and reaches every nested call', async () => {
    await withGateway(undefined, async (url) => {
      const sent = await fetch(`${url}/trpc/gw-front.who`, {
        headers: { 'x-request-id': 'client-id-1' },
      })
      expect(sent.headers.get('x-request-id')).toBe('client-id-1')
      expect((await json(sent)).result?.data).toEqual({
        own: { requestId: 'client-id-1', caller: null },
        nested: { requestId: 'client-id-1', caller: null },
      })
      const made = await fetch(`${url}/trpc/gw-front.who`)
      const id = made.headers.get('x-request-id')
      expect(id).toMatch(/^[0-9a-f-]{36}$/)
      expect((await json(made)).result?.data).toEqual({
        own: { requestId: id, caller: null },
        nested: { requestId: id, caller: null },
      })
      const bad = await fetch(`${url}/trpc/gw-front.who`, { headers: { 'x-request-id': 'a b' } })
      expect(bad.status).toBe(400)
      expect((await json(bad)).error.message).toMatch(/x-request-id is invalid/)
    })
  })

  it('authenticate: its principal is ctx.caller in every service the call reaches; a client cannot send one', async () => {
    const gateway = defineGateway({
      authenticate: (request) => {
        const token = request.headers.authorization
        if (token !== 'Bearer good') throw new Error('a valid bearer token is required')
        return { id: 'u-1', roles: ['reader'], calls: request.calls }
      },
    })
    await withGateway(gateway, async (url) => {
      const response = await fetch(`${url}/trpc/gw-front.who`, {
        headers: { authorization: 'Bearer good', 'x-framework-caller': 'eyJpZCI6ImFkbWluIn0' },
      })
      const caller = { id: 'u-1', roles: ['reader'], calls: ['gw-front.who'] }
      expect((await json(response)).result?.data).toMatchObject({
        own: { caller },
        nested: { caller },
      })
    })
  })

  it('authenticate throwing: 401 and the service is never called', async () => {
    const gateway = defineGateway({
      authenticate: () => {
        throw new Error('a valid bearer token is required')
      },
    })
    await withGateway(gateway, async (url) => {
      const before = { ...served }
      for (const path of [
        `/trpc/gw-front.who`,
        `/trpc/gw-front.who,gw-front.echo?batch=1`,
        `/api/gw-front/who`,
      ]) {
        const response = await fetch(`${url}${path}`)
        expect(response.status, path).toBe(401)
        const body = await json(response)
        expect(body.error.data.code).toBe('UNAUTHORIZED')
        expect(body.error.data.frameworkCode).toBe('FRAMEWORK_ERR_UNAUTHENTICATED')
        expect(body.error.message).toBe('a valid bearer token is required')
      }
      const mutation = await fetch(`${url}/trpc/gw-front.save`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"text":"x"}',
      })
      expect(mutation.status).toBe(401)
      expect(served).toEqual(before)
    })
  })
})

describe('exposure', () => {
  it('a procedure not exposed is 404 on every path form, and never called', async () => {
    await withGateway(undefined, async (url) => {
      const before = { ...served }
      const forms: [string, string, string?][] = [
        ['GET', '/trpc/gw-back.who'],
        ['GET', '/trpc/gw-front.secret'],
        ['GET', '/trpc/gw-back.who?batch=1'],
        ['GET', '/trpc/gw-back.who,gw-front.secret?batch=1'],
        ['GET', '/trpc/gw-back%2Ewho'],
        ['GET', '/trpc/gw-back%2ewho'],
        ['GET', '/trpc/gw%2Dback.who'],
        ['GET', '/trpc/../trpc/gw-back.who'],
        ['GET', '/trpc/gw-front.who/../../trpc/gw-back.who'],
        ['GET', '/trpc/gw-front.who%2F..%2F..%2Ftrpc%2Fgw-back.who'],
        ['GET', '/trpc//gw-back.who'],
        ['GET', '/trpc/gw-back.who/'],
        ['GET', '/trpc/gw-front.__proto__'],
        ['GET', '/trpc/__proto__.who'],
        ['GET', '/trpc/gw-front.constructor'],
        ['GET', '/trpc/gw-front.secret.call'],
        ['GET', '/trpc/gw-front'],
        ['GET', '/api/gw-back/who'],
        ['GET', '/api/gw-front/secret'],
        ['GET', '/api/gw-back%2Fwho'],
        ['GET', '/api/gw-front/../gw-back/who'],
        ['GET', '/api/gw-front/nested.ping'],
        ['GET', '/api/__proto__/who'],
        ['GET', '/api/gw-front/__proto__'],
        ['GET', '/api/gw-front'],
        ['POST', '/trpc/gw-back.who', '{}'],
        ['POST', '/api/gw-back/who', '{}'],
        ['POST', '/api/gw-front/secret', '{}'],
        ['GET', '/trpc/nope.who'],
        ['GET', '/api/nope/who'],
        ['GET', '/elsewhere'],
        ['GET', '/'],
      ]
      for (const [method, path, body] of forms) {
        const response = await raw(url, method, path, body)
        expect(response.status, `${method} ${path}`).toBe(404)
        const parsed = JSON.parse(response.body) as ErrorBody | ErrorBody[]
        for (const item of Array.isArray(parsed) ? parsed : [parsed]) {
          expect(item.error.data.code, `${method} ${path}`).toBe('NOT_FOUND')
        }
      }
      expect(served).toEqual(before)
    })
  })

  it('a role exposing procedures with no live instance: 503 naming the role', async () => {
    await withGateway(undefined, async (url) => {
      const response = await fetch(`${url}/trpc/gw-ghost.boo`)
      expect(response.status).toBe(503)
      const body = await json(response)
      expect(body.error.data.code).toBe('SERVICE_UNAVAILABLE')
      expect(body.error.message).toMatch(/no live instance of role 'gw-ghost'/)
      expect(body.error.message).not.toMatch(/127\.0\.0\.1|etcd/)
    })
  })

  it('a deadline exceeded: 504 with tRPC’s TIMEOUT shape', async () => {
    const gateway = defineGateway({ deps: { 'gw-front': { timeoutMs: 300 } } })
    await withGateway(gateway, async (url) => {
      const response = await fetch(`${url}/trpc/gw-front.sleep?input=${input({ ms: 2_000 })}`)
      expect(response.status).toBe(504)
      const body = await json(response)
      expect(body.error).toMatchObject({
        code: -32008,
        data: { code: 'TIMEOUT', httpStatus: 504, path: 'gw-front.sleep' },
      })
    })
  })
})

describe('bad input is refused at the edge, nothing forwarded', () => {
  it('malformed JSON, wrong types, bad methods, media types, batches and limits', async () => {
    const gateway = defineGateway({
      limits: { maxBodyBytes: 4096, maxBatch: 4, maxHeaderBytes: 4096 },
    })
    await withGateway(gateway, async (url) => {
      const before = { ...served }
      const post = (path: string, body: string, type = 'application/json') =>
        fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': type }, body })
      const cases: [string, Promise<Response>, number, string][] = [
        ['malformed JSON body', post('/trpc/gw-front.save', '{"text": '), 400, 'BAD_REQUEST'],
        ['malformed ?input=', fetch(`${url}/trpc/gw-front.echo?input=%7Bnot`), 400, 'BAD_REQUEST'],
        [
          'wrong types',
          fetch(`${url}/trpc/gw-front.echo?input=${input({ text: [] })}`),
          400,
          'BAD_REQUEST',
        ],
        ['missing input', fetch(`${url}/trpc/gw-front.echo`), 400, 'BAD_REQUEST'],
        [
          'string too long',
          fetch(`${url}/trpc/gw-front.echo?input=${input({ text: 'x'.repeat(101) })}`),
          400,
          'BAD_REQUEST',
        ],
        [
          'query sent as POST',
          post('/trpc/gw-front.echo', '{"text":"a"}'),
          405,
          'METHOD_NOT_SUPPORTED',
        ],
        [
          'mutation sent as GET',
          fetch(`${url}/trpc/gw-front.save?input=${input({ text: 'a' })}`),
          405,
          'METHOD_NOT_SUPPORTED',
        ],
        [
          'PUT',
          fetch(`${url}/trpc/gw-front.save`, { method: 'PUT', body: '{}' }),
          405,
          'METHOD_NOT_SUPPORTED',
        ],
        [
          'not JSON content type',
          post('/trpc/gw-front.save', 'text=a', 'text/plain'),
          415,
          'UNSUPPORTED_MEDIA_TYPE',
        ],
        [
          'body over the limit',
          post('/trpc/gw-front.save', JSON.stringify({ text: 'x'.repeat(5000) })),
          413,
          'PAYLOAD_TOO_LARGE',
        ],
        [
          'batch over the limit',
          fetch(`${url}/trpc/${Array(5).fill('gw-front.echo').join(',')}?batch=1`),
          413,
          'PAYLOAD_TOO_LARGE',
        ],
        [
          'batch input not an object',
          fetch(`${url}/trpc/gw-front.echo?batch=1&input=3`),
          400,
          'BAD_REQUEST',
        ],
        ['bad percent-encoding', fetch(`${url}/trpc/gw-front.%E0%A4%A`), 400, 'BAD_REQUEST'],
        [
          'httpBatchStreamLink',
          fetch(`${url}/trpc/gw-front.echo?batch=1`, {
            headers: { 'trpc-accept': 'application/jsonl' },
          }),
          400,
          'BAD_REQUEST',
        ],
      ]
      for (const [what, pending, status, code] of cases) {
        const response = await pending
        expect(response.status, what).toBe(status)
        const body = await json(response)
        expect(body.error.data.code, what).toBe(code)
        expect(body.error.message.length, what).toBeGreaterThan(10)
      }
      // A head over the limit is refused by the HTTP parser itself.
      const bigHead = await raw(
        url,
        'GET',
        `/trpc/gw-front.echo?input=${input({ text: 'x'.repeat(5000) })}`,
      )
      expect(bigHead.status).toBe(431)
      expect(JSON.parse(bigHead.body)).toMatchObject({
        error: { data: { code: 'BAD_REQUEST', httpStatus: 431 } },
      })
      expect(served).toEqual(before)
      const healthy = await fetch(
        `${url}/trpc/gw-front.echo?input=${input({ text: 'still here' })}`,
      )
      expect(healthy.status).toBe(200)
    })
  })
})

describe('rate limit', () => {
  it('429 with Retry-After once the burst is spent, served again after the refill', async () => {
    const gateway = defineGateway({ rateLimit: { burst: 3, perSecond: 2 } })
    await withGateway(gateway, async (url) => {
      const call = () => fetch(`${url}/trpc/gw-front.echo?input=${input({ text: 'r' })}`)
      for (let i = 0; i < 3; i++) expect((await call()).status).toBe(200)
      const limited = await call()
      expect(limited.status).toBe(429)
      const retryAfter = Number(limited.headers.get('retry-after'))
      expect(retryAfter).toBeGreaterThanOrEqual(1)
      const body = await json(limited)
      expect(body.error.data).toMatchObject({
        code: 'TOO_MANY_REQUESTS',
        frameworkCode: 'FRAMEWORK_ERR_RATE_LIMITED',
      })
      await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000))
      const again = await call()
      expect(again.status).toBe(200)
      expect(await json(again)).toEqual({ result: { data: { text: 'r' } } })
    })
  })

  it('a batch takes a token per call', async () => {
    const gateway = defineGateway({ rateLimit: { burst: 2, perSecond: 1 } })
    await withGateway(gateway, async (url) => {
      const batch = await fetch(`${url}/trpc/gw-front.nested.ping,gw-front.nested.ping?batch=1`)
      expect(batch.status).toBe(200)
      const single = await fetch(`${url}/trpc/gw-front.nested.ping`)
      expect(single.status).toBe(429)
    })
  })
})

describe('CORS', () => {
  it('an allowed origin gets the allow headers and a preflight; any other is refused with 403', async () => {
    const allowed = 'http://127.0.0.1:5173'
    const gateway = defineGateway({ cors: { origins: [allowed] } })
    await withGateway(gateway, async (url) => {
      const before = { ...served }
      const ok = await fetch(`${url}/trpc/gw-front.echo?input=${input({ text: 'c' })}`, {
        headers: { origin: allowed },
      })
      expect(ok.status).toBe(200)
      expect(ok.headers.get('access-control-allow-origin')).toBe(allowed)
      expect(ok.headers.get('access-control-expose-headers')).toContain('x-request-id')
      const preflight = await fetch(`${url}/trpc/gw-front.save`, {
        method: 'OPTIONS',
        headers: {
          origin: allowed,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type',
        },
      })
      expect(preflight.status).toBe(204)
      expect(preflight.headers.get('access-control-allow-methods')).toBe('GET, POST')
      expect(preflight.headers.get('access-control-allow-headers')).toBe('content-type')
      const other = 'http://127.0.0.1:6666'
      const refused = await fetch(`${url}/trpc/gw-front.echo?input=${input({ text: 'c' })}`, {
        headers: { origin: other },
      })
      expect(refused.status).toBe(403)
      expect(refused.headers.get('access-control-allow-origin')).toBeNull()
      expect((await json(refused)).error.data.frameworkCode).toBe('FRAMEWORK_ERR_ORIGIN_REFUSED')
      const refusedPreflight = await fetch(`${url}/trpc/gw-front.save`, {
        method: 'OPTIONS',
        headers: { origin: other, 'access-control-request-method': 'POST' },
      })
      expect(refusedPreflight.status).toBe(403)
      const badHeader = await fetch(`${url}/trpc/gw-front.save`, {
        method: 'OPTIONS',
        headers: {
          origin: allowed,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'x-secret',
        },
      })
      expect(badHeader.status).toBe(403)
      expect(served.front).toBe(before.front + 1)
    })
  })
})

describe('OpenAPI', () => {
  it('/openapi.json is a valid OpenAPI 3.1 document of the exposed procedures only', async () => {
    await withGateway(undefined, async (url) => {
      const document = (await (await fetch(`${url}/openapi.json`)).json()) as {
        openapi: string
        paths: Record<string, Record<string, { parameters?: { content: unknown }[] }>>
      }
      const result = await validate(structuredClone(document) as never)
      expect(result.valid, JSON.stringify(result)).toBe(true)
      expect(document.openapi).toBe('3.1.0')
      expect(Object.keys(document.paths).sort()).toEqual([
        '/api/gw-front/echo',
        '/api/gw-front/nested/ping',
        '/api/gw-front/save',
        '/api/gw-front/sleep',
        '/api/gw-front/who',
        '/api/gw-ghost/boo',
      ])
      expect(Object.keys(document.paths['/api/gw-front/save']!)).toEqual(['post'])
      expect(document.paths['/api/gw-front/echo']?.get?.parameters?.[0]?.content).toEqual({
        'application/json': {
          schema: {
            type: 'object',
            properties: {
              text: { type: 'string', maxLength: 100 },
              n: { type: 'integer', minimum: -9007199254740991, maximum: 9007199254740991 },
            },
            required: ['text'],
          },
        },
      })
    })
  })
})

describe('shutdown', () => {
  it('SIGTERM’s stop answers the requests in progress, then closes', async () => {
    const running = await startTestGateway(etcd.endpoint, ns)
    await waitFor('the gateway sees gw-front', () =>
      Boolean(running.dependencies.resolvers.get('gw-front')?.endpoints.length),
    )
    const inFlight = fetch(`${running.url}/trpc/gw-front.sleep?input=${input({ ms: 500 })}`)
    await waitFor('the call to be in flight', () => running.handler.inflight > 0)
    const stopped = running.stop()
    const response = await inFlight
    expect(response.status).toBe(200)
    expect(await json(response)).toEqual({ result: { data: { slept: 500 } } })
    await stopped
    await expect(fetch(`${running.url}/healthz`)).rejects.toThrow()
  })
})

describe('the gateway serves /metrics', () => {
  it('counts each call by exposed name and status (unexposed names as `unknown`), and its calls to the roles', async () => {
    await withGateway(undefined, async (url) => {
      for (let i = 0; i < 3; i++) {
        expect(
          (await fetch(`${url}/trpc/gw-front.echo?input=${input({ text: `e${i}` })}`)).status,
        ).toBe(200)
      }
      const save = () =>
        fetch(`${url}/trpc/gw-front.save`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ text: 's' }),
        })
      expect((await save()).status).toBe(200)
      expect((await save()).status).toBe(200)
      // Refused at the edge: bad input (400), a procedure not exposed (404).
      expect((await fetch(`${url}/trpc/gw-front.echo?input=${input({ text: 1 })}`)).status).toBe(
        400,
      )
      expect((await fetch(`${url}/trpc/gw-front.secret`)).status).toBe(404)
      expect((await fetch(`${url}/api/gw-front/nested/ping`)).status).toBe(200)

      const metrics = await fetch(`${url}/metrics?debug=1`)
      expect(metrics.status).toBe(200)
      expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
      const samples = parseSamples(
        await metrics.text(),
        new Set(['framework_server_calls_total', 'framework_client_calls_total']),
      )
      const calls = (labels: Record<string, string>) =>
        sumSamples(samples, 'framework_server_calls_total', labels)
      expect(calls({ procedure: 'gw-front.echo', kind: 'query', code: '200' })).toBe(3)
      expect(calls({ procedure: 'gw-front.echo', kind: 'query', code: '400' })).toBe(1)
      expect(calls({ procedure: 'gw-front.save', kind: 'mutation', code: '200' })).toBe(2)
      expect(calls({ procedure: 'gw-front.nested.ping', kind: 'query', code: '200' })).toBe(1)
      expect(calls({ procedure: 'unknown', kind: 'query', code: '404' })).toBe(1)
      expect(calls({})).toBe(8)
      // Only the calls that passed the edge were forwarded, each counted once at the client.
      const forwarded = (procedure: string) =>
        sumSamples(samples, 'framework_client_calls_total', {
          role: 'gw-front',
          procedure,
          outcome: 'ok',
        })
      expect([forwarded('echo'), forwarded('save'), forwarded('nested.ping')]).toEqual([3, 2, 1])
      expect(sumSamples(samples, 'framework_client_calls_total')).toBe(6)

      const head = await fetch(`${url}/metrics`, { method: 'HEAD' })
      expect(head.status).toBe(200)
      const post = await fetch(`${url}/metrics`, { method: 'POST', body: '{}' })
      expect(post.status).toBe(405)
      expect(post.headers.get('allow')).toBe('GET, HEAD')
    })
  })
})
