import { describe, expect, it } from 'vitest'
import { corsHeaders, preflightHeaders } from '../../framework/gateway/cors.js'
import { TokenBuckets } from '../../framework/gateway/rate-limit.js'
import { parseRoute } from '../../framework/gateway/routes.js'
import { defineGateway, GatewayConfigError } from '../../framework/index.js'
import { exitCodeOf } from '../../framework/internal/errors.js'

describe('gateway routes', () => {
  it('reads tRPC single and batch calls, plain JSON calls and the fixed paths', () => {
    expect(parseRoute('/trpc/api.get?input=%7B%7D')).toMatchObject({
      kind: 'trpc',
      names: ['api.get'],
      batch: false,
    })
    const batch = parseRoute('/trpc/api.get,api.put?batch=1&input=%7B%7D')
    expect(batch).toMatchObject({ kind: 'trpc', names: ['api.get', 'api.put'], batch: true })
    expect(batch.kind === 'trpc' && batch.params.get('input')).toBe('{}')
    // Without batch=1 a comma is part of one name (which no procedure has).
    expect(parseRoute('/trpc/api.get,api.put')).toMatchObject({ names: ['api.get,api.put'] })
    expect(parseRoute('/api/api/get')).toMatchObject({ kind: 'api', name: 'api.get' })
    expect(parseRoute('/api/store/admin/flush?input=1')).toMatchObject({
      kind: 'api',
      name: 'store.admin.flush',
    })
    expect(parseRoute('/openapi.json')).toEqual({ kind: 'openapi' })
    expect(parseRoute('/healthz')).toEqual({ kind: 'healthz' })
    expect(parseRoute('/readyz?x')).toEqual({ kind: 'readyz' })
  })

  it('names are exact: no normalising; odd forms are unknown names, bad escapes malformed', () => {
    expect(parseRoute('/trpc/api%2Eget')).toMatchObject({ kind: 'trpc', names: ['api.get'] })
    expect(parseRoute('/trpc/../cache.get')).toMatchObject({ names: ['../cache.get'] })
    expect(parseRoute('/trpc/a%2F..%2Fb')).toMatchObject({ names: ['a/../b'] })
    for (const path of [
      '/api/cache%2Fget',
      '/api/api/../cache/get',
      '/api/api/get.x',
      '/api/api',
      '/api/api/',
      '/api//get',
      '/nothing',
      '/trpc',
      '/apix/a/b',
    ]) {
      expect(parseRoute(path).kind, path).toBe('unknown')
    }
    expect(parseRoute('/trpc/%E0%A4%A')).toMatchObject({ kind: 'malformed' })
    expect(parseRoute('/api/api/%ZZ')).toMatchObject({ kind: 'malformed' })
  })
})

describe('token buckets', () => {
  it('allows the burst, then refills at the rate; says how long to wait', () => {
    const buckets = new TokenBuckets(3, 2)
    expect([0, 0, 0].map(() => buckets.take('a', 1, 1_000))).toEqual([0, 0, 0])
    expect(buckets.take('a', 1, 1_000)).toBe(500)
    expect(buckets.take('b', 1, 1_000)).toBe(0)
    expect(buckets.take('a', 1, 1_500)).toBe(0)
    expect(buckets.take('a', 2, 1_500)).toBe(1_000)
    expect(buckets.take('a', 1, 10_000)).toBe(0)
  })

  it('a batch larger than the bucket needs it full and leaves it in debt', () => {
    const buckets = new TokenBuckets(2, 1)
    expect(buckets.take('a', 5, 0)).toBe(0)
    expect(buckets.take('a', 1, 0)).toBe(4_000)
  })

  it('without a limit nothing is kept', () => {
    const buckets = new TokenBuckets(Number.POSITIVE_INFINITY, 0)
    expect(buckets.take('a', 1_000, 0)).toBe(0)
    expect(buckets.clients).toBe(0)
  })
})

describe('CORS', () => {
  const { cors } = defineGateway({ cors: { origins: ['https://shop.example'] } })

  it('no Origin: nothing; the allowed origin: its allow headers; another: refused', () => {
    expect(corsHeaders(cors, {})).toBeUndefined()
    expect(corsHeaders(cors, { origin: 'https://shop.example' })).toEqual({
      'access-control-allow-origin': 'https://shop.example',
      'access-control-expose-headers': 'x-request-id, retry-after',
      vary: 'Origin',
    })
    expect(corsHeaders(cors, { origin: 'https://evil.example' })).toBe('refused')
    expect(corsHeaders(undefined, { origin: 'https://shop.example' })).toBe('refused')
  })

  it('a page from the gateway’s own host is same-origin', () => {
    expect(corsHeaders(undefined, { origin: 'http://gw:8080', host: 'gw:8080' })).toBeUndefined()
  })

  it('preflight: only allowed origins, GET/POST and allowed headers', () => {
    const request = {
      origin: 'https://shop.example',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'Content-Type, X-Request-Id',
    }
    expect(preflightHeaders(cors, request)).toMatchObject({
      'access-control-allow-methods': 'GET, POST',
      'access-control-allow-headers': 'content-type, x-request-id',
      'access-control-max-age': '600',
    })
    expect(preflightHeaders(cors, { ...request, 'access-control-request-method': 'DELETE' })).toBe(
      'refused',
    )
    expect(preflightHeaders(cors, { ...request, 'access-control-request-headers': 'x-a' })).toBe(
      'refused',
    )
    expect(preflightHeaders(cors, { ...request, origin: 'https://evil.example' })).toBe('refused')
  })
})

describe('defineGateway', () => {
  it('fills in the defaults', () => {
    const gateway = defineGateway()
    expect(gateway.limits).toEqual({ maxBodyBytes: 1048576, maxBatch: 64, maxHeaderBytes: 16384 })
    expect(gateway.rateLimit.burst).toBe(Number.POSITIVE_INFINITY)
    expect(gateway.cors).toBeUndefined()
  })

  it.each([
    [{ cors: { origins: ['https://shop.example/'] } }, /cors origin "https:\/\/shop.example\/"/],
    [{ cors: { origins: ['*.example'] } }, /cors origin/],
    [{ cors: { origins: '*', credentials: true } }, /cannot go with credentials/],
    [{ cors: { origins: ['https://a.b'], allowHeaders: ['x y'] } }, /not a header name/],
    [{ rateLimit: { burst: 0, perSecond: 1 } }, /rateLimit.burst 0 is invalid/],
    [{ rateLimit: { burst: 5, perSecond: 0 } }, /rateLimit.perSecond 0 is invalid/],
    [{ limits: { maxBodyBytes: 10 } }, /limits.maxBodyBytes 10 is invalid: use a whole number/],
    [{ deps: { Api: {} } }, /invalid role "Api"/],
    [{ deps: { api: { balancer: 'fastest' } } }, /unknown balancer "fastest"/],
    [{ deps: { api: { timeoutMs: -1 } } }, /deps.api.timeoutMs -1 is invalid/],
    [{ authenticate: 'yes' }, /authenticate must be a function/],
  ])('refuses %j with a message naming it, exit 2', (options, message) => {
    let thrown: unknown
    try {
      defineGateway(options as never)
    } catch (err) {
      thrown = err
    }
    expect(String((thrown as Error)?.message)).toMatch(message)
    expect(exitCodeOf(thrown)).toBe(2)
  })

  it('its own errors carry FRAMEWORK_ERR_BAD_GATEWAY', () => {
    expect(() => defineGateway({ rateLimit: { burst: 0, perSecond: 1 } })).toThrow(
      GatewayConfigError,
    )
  })
})
