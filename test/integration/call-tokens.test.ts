import { SignJWT } from 'jose'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { Dependencies } from '../../framework/client/dependencies.js'
import { loadGatewayConfig } from '../../framework/gateway/config.js'
import { defineGateway } from '../../framework/gateway/define-gateway.js'
import { startGateway } from '../../framework/gateway/start-gateway.js'
import { defineService, initService } from '../../framework/index.js'
import { TOKEN_HEADER } from '../../framework/protocol/call-token.js'
import { CALLER_KEY, encodeCaller, PRINCIPAL_KEY } from '../../framework/protocol/metadata.js'
import { createEtcdClient } from '../../framework/registry/etcd-client.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import { mintCallToken } from '../../framework/security/call-token.js'
import { CallTokens } from '../../framework/security/call-tokens.js'
import { faultRow } from '../support/fault-summary.js'
import { startInProcess } from '../support/in-process.js'
import { raw } from '../support/raw-request.js'
import { RawStream, waitUntil } from '../support/raw-stream.js'
import { waitFor } from '../support/wait.js'

const NS = 'call-tokens'
const SECRET = 'k'.repeat(20) + 'the-namespace-secret-of-this-test'
const OTHER_SECRET = 'z'.repeat(48)
const key = (secret: string) => new TextEncoder().encode(secret)

/** Calls that reached a procedure of the callee: a refused call must leave it unchanged. */
let ran = 0

const c = initService()
const callee = defineService({
  role: 'tok-cache',
  router: c.router({
    who: c.procedure.query(({ ctx }) => {
      ran++
      return { callerRole: ctx.callerRole ?? null, caller: ctx.caller ?? null }
    }),
    bump: c.procedure.mutation(() => ++ran),
  }),
})

const a = initService<{ 'tok-cache': typeof callee }>()
const api = defineService({
  role: 'tok-api',
  deps: { 'tok-cache': true },
  expose: ['relay'],
  router: a.router({
    relay: a.procedure.query(async ({ ctx }) => ({
      own: { callerRole: ctx.callerRole ?? null, caller: ctx.caller ?? null },
      nested: await ctx.deps['tok-cache'].who(),
    })),
  }),
})

let etcd: EtcdServer
const instances: RunningInstance[] = []
let cacheUrl: string
let apiUrl: string

const env = { FRAMEWORK_SECRET: SECRET }

/** A valid token from `caller` for `audience`, signed with the namespace secret. */
const tokenFor = (audience: string, caller = 'tester') =>
  mintCallToken({ secret: key(SECRET), caller, audience, namespace: NS })

/** The clients `roles` as a service would have them, with tokens as `caller`. */
function clients(roles: string[], caller: string, stream = true) {
  const client = createEtcdClient([etcd.endpoint])
  const deps = new Dependencies({
    etcd: client,
    etcdEndpoints: [etcd.endpoint],
    namespace: NS,
    deps: Object.fromEntries(roles.map((role) => [role, {}])),
    log: pino({ level: 'silent' }),
    transport: { stream },
    tokens: new CallTokens({ caller, namespace: NS, secret: key(SECRET) }),
  })
  return {
    deps,
    async close() {
      await deps.close()
      client.close()
    },
  }
}

beforeAll(async () => {
  etcd = await EtcdServer.start()
  const cache = await startInProcess(callee, etcd.endpoint, NS, env)
  const front = await startInProcess(api, etcd.endpoint, NS, env)
  instances.push(cache, front)
  cacheUrl = cache.instance.url
  apiUrl = front.instance.url
  await waitFor('both registered', () => instances.every((i) => i.registration.registered))
  await waitFor('api sees tok-cache', () =>
    Boolean(front.deps?.resolvers.get('tok-cache')?.endpoints.length),
  )
})

afterAll(async () => {
  for (const instance of instances) await instance.stop()
  await etcd?.dispose()
})

describe('calls between services carry call tokens (FRAMEWORK_SECRET set)', () => {
  it('api → cache over the RPC stream: ctx.callerRole is the calling role', async () => {
    const response = await raw(apiUrl, 'GET', '/_rpc/relay', undefined, {
      [TOKEN_HEADER]: await tokenFor('tok-api', 'cli'),
    })
    expect(response.status, response.body).toBe(200)
    expect(JSON.parse(response.body).result.data).toEqual({
      own: { callerRole: 'cli', caller: null },
      nested: { callerRole: 'tok-api', caller: null },
    })
    // The nested call went over the stream (one upgraded connection to the cache).
    expect(instances[1]!.deps!.openStreams).toBe(1)
  })

  it('over requests (/_rpc single and batch) and /trpc too', async () => {
    const { deps, close } = clients(['tok-cache'], 'tok-api', false)
    try {
      const cache = deps.forRequest(undefined)['tok-cache'] as {
        who(): Promise<unknown>
      }
      // Several in one tick go out as one batch request.
      const answers = await Promise.all([cache.who(), cache.who(), cache.who()])
      for (const answer of answers) expect(answer).toEqual({ callerRole: 'tok-api', caller: null })
      expect(await cache.who()).toEqual({ callerRole: 'tok-api', caller: null })
    } finally {
      await close()
    }
    const trpc = await raw(cacheUrl, 'GET', '/trpc/who', undefined, {
      [TOKEN_HEADER]: await tokenFor('tok-cache', 'curl'),
    })
    expect(trpc.status, trpc.body).toBe(200)
    expect(JSON.parse(trpc.body).result.data).toEqual({ callerRole: 'curl', caller: null })
  })

  it('the end user a gateway forwards arrives signed; an unsigned one is dropped', async () => {
    const principal = { id: 'u-7', name: 'Zoë' }
    const { deps, close } = clients(['tok-api'], 'gateway')
    try {
      const client = deps.clients.get('tok-api')!
      const answer = await client.call('relay', undefined, undefined, undefined, {
        [CALLER_KEY]: encodeCaller(principal) as string,
      })
      expect(answer).toEqual({
        own: { callerRole: 'gateway', caller: principal },
        nested: { callerRole: 'tok-api', caller: principal },
      })
    } finally {
      await close()
    }
    // Asserted by a caller with a valid token but unsigned: not believed.
    const unsigned = await raw(cacheUrl, 'GET', '/_rpc/who', undefined, {
      [TOKEN_HEADER]: await tokenFor('tok-cache'),
      [CALLER_KEY]: encodeCaller({ id: 'admin' }) as string,
    })
    expect(JSON.parse(unsigned.body).result.data).toEqual({ callerRole: 'tester', caller: null })
    // A principal token signed with another secret: refused.
    const forged = await mintCallToken({
      secret: key(OTHER_SECRET),
      caller: 'tester',
      audience: 'tok-cache',
      namespace: NS,
      principal: { id: 'admin' },
    })
    const before = ran
    const refused = await raw(cacheUrl, 'GET', '/_rpc/who', undefined, {
      [TOKEN_HEADER]: await tokenFor('tok-cache'),
      [PRINCIPAL_KEY]: forged,
    })
    expect(refused.status).toBe(401)
    expect(ran).toBe(before)
  })
})

describe('the gateway signs the end user its authenticate() returned', () => {
  it('ctx.caller in every service the call reaches, ctx.callerRole gateway then tok-api', async () => {
    const gateway = await startGateway({
      definitions: [api, callee],
      gateway: defineGateway({
        authenticate: (request) =>
          request.headers.authorization === 'Bearer good' ? { id: 'u-1' } : undefined,
      }),
      config: loadGatewayConfig(
        {
          ETCD_ENDPOINTS: etcd.endpoint,
          FRAMEWORK_NAMESPACE: NS,
          GATEWAY_PORT: '0',
          HOST: '127.0.0.1',
          FRAMEWORK_SECRET: SECRET,
        },
        { namespace: NS },
      ),
      app: { namespace: NS, version: '1.0.0' },
      log: pino({ level: 'silent' }),
    })
    try {
      await waitFor('the gateway sees tok-api', () =>
        Boolean(gateway.dependencies.resolvers.get('tok-api')?.endpoints.length),
      )
      const response = await raw(gateway.url, 'GET', '/trpc/tok-api.relay', undefined, {
        authorization: 'Bearer good',
        // A client cannot name an end user itself.
        [CALLER_KEY]: encodeCaller({ id: 'admin' }) as string,
      })
      expect(response.status, response.body).toBe(200)
      expect(JSON.parse(response.body).result.data).toEqual({
        own: { callerRole: 'gateway', caller: { id: 'u-1' } },
        nested: { callerRole: 'tok-api', caller: { id: 'u-1' } },
      })
    } finally {
      await gateway.stop()
    }
  })
})

/** Tokens a direct caller might send, each refused. */
async function badTokens(): Promise<Record<string, string>> {
  const now = Math.floor(Date.now() / 1000)
  const sign = (claims: Record<string, unknown>, secret = SECRET) =>
    new SignJWT({ ns: NS, ...claims })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('tester')
      .setSubject('tester')
      .setAudience('tok-cache')
      .setIssuedAt(now)
      .setExpirationTime(now + 30)
      .sign(key(secret))
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const expired = await new SignJWT({ ns: NS })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer('tester')
    .setSubject('tester')
    .setAudience('tok-cache')
    .setIssuedAt(now - 120)
    .setExpirationTime(now - 60)
    .sign(key(SECRET))
  const longLived = await new SignJWT({ ns: NS })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer('tester')
    .setSubject('tester')
    .setAudience('tok-cache')
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(key(SECRET))
  return {
    'no token': '',
    'an expired token': expired,
    'a forged signature': await sign({}, OTHER_SECRET),
    'a token for another audience': await mintCallToken({
      secret: key(SECRET),
      caller: 'tester',
      audience: 'tok-api',
      namespace: NS,
    }),
    'a token for another namespace': await mintCallToken({
      secret: key(SECRET),
      caller: 'tester',
      audience: 'tok-cache',
      namespace: 'elsewhere',
    }),
    'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: 'tester', sub: 'tester', aud: 'tok-cache', ns: NS, iat: now, exp: now + 30 })}.`,
    'a token living an hour': longLived,
    'not a JWT': 'hello',
    'an 8 KB token': 'a'.repeat(8 * 1024),
  }
}

/** tRPC's UNAUTHORIZED error shape. */
function expectUnauthorized(status: number, body: string, what: string) {
  expect(status, `${what}: ${body}`).toBe(401)
  const error = JSON.parse(body).error
  expect(error.data.code, what).toBe('UNAUTHORIZED')
  expect(error.code, what).toBe(-32001)
  expect(error.data.httpStatus, what).toBe(401)
  expect(typeof error.message, what).toBe('string')
}

describe('a direct call to a service port without a valid token is refused: 401, nothing runs', () => {
  it('/_rpc single (query and mutation), /_rpc/_batch and /trpc', async () => {
    const before = ran
    let sent = 0
    let refused = 0
    const count = (status: number) => {
      sent++
      if (status === 401) refused++
    }
    for (const [what, token] of Object.entries(await badTokens())) {
      const headers: Record<string, string> = token === '' ? {} : { [TOKEN_HEADER]: token }
      const single = await raw(cacheUrl, 'GET', '/_rpc/who', undefined, headers)
      expectUnauthorized(single.status, single.body, `${what} /_rpc/who`)
      const mutation = await raw(cacheUrl, 'POST', '/_rpc/bump', '{}', headers)
      expectUnauthorized(mutation.status, mutation.body, `${what} /_rpc/bump`)
      const batch = await raw(
        cacheUrl,
        'POST',
        '/_rpc/_batch',
        JSON.stringify([
          ['who', 'query', null, 1000],
          ['bump', 'mutation', null, 1000],
        ]),
        headers,
      )
      expectUnauthorized(batch.status, batch.body, `${what} /_rpc/_batch`)
      const trpc = await raw(cacheUrl, 'GET', '/trpc/who', undefined, headers)
      expectUnauthorized(trpc.status, trpc.body, `${what} /trpc/who`)
      // An unknown procedure is 401 too: an unauthenticated caller learns nothing.
      const unknown = await raw(cacheUrl, 'GET', '/_rpc/nope', undefined, headers)
      expectUnauthorized(unknown.status, unknown.body, `${what} /_rpc/nope`)
      for (const answer of [single, mutation, batch, trpc, unknown]) count(answer.status)
    }
    const row = faultRow('calls to a service port without a valid call token (9 kinds × 5 paths)')
    row.measured({
      calls: sent,
      failed: sent - refused,
      note: `procedure ran ${ran - before} times`,
    })
    expect(ran).toBe(before)
    expect(refused).toBe(sent)
    row.passed()
  })

  it('the RPC stream upgrade', async () => {
    const before = ran
    for (const [what, token] of Object.entries(await badTokens())) {
      const headers: Record<string, string> = token === '' ? {} : { [TOKEN_HEADER]: token }
      const stream = await RawStream.open(cacheUrl, undefined, undefined, undefined, headers)
      expect(stream.head, what).toMatch(/^HTTP\/1\.1 401 /)
      stream.send('[1,"who","query",null,null]\n')
      expect(await stream.closed(), what).toBe(true)
    }
    expect(ran).toBe(before)
  })

  it('a 100 KB token header is refused by the HTTP parser (431) before any code runs; never a crash', async () => {
    const before = ran
    const huge = { [TOKEN_HEADER]: 'a'.repeat(100 * 1024) }
    const single = await raw(cacheUrl, 'GET', '/_rpc/who', undefined, huge)
    expect(single.status).toBe(431)
    const trpc = await raw(cacheUrl, 'GET', '/trpc/who', undefined, huge)
    expect(trpc.status).toBe(431)
    // Still serving.
    const ok = await raw(cacheUrl, 'GET', '/_rpc/who', undefined, {
      [TOKEN_HEADER]: await tokenFor('tok-cache'),
    })
    expect(ok.status).toBe(200)
    expect(ran).toBe(before + 1)
  })

  it('/healthz and /readyz stay open; /metrics is open by default', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const response = await raw(cacheUrl, 'GET', path)
      expect(response.status, path).toBe(200)
    }
  })
})

describe('the RPC stream checks its token again before it expires', () => {
  it('a connection whose token expired is told goaway, then its calls are refused 401', async () => {
    const shortLived = await mintCallToken({
      secret: key(SECRET),
      caller: 'tester',
      audience: 'tok-cache',
      namespace: NS,
      lifetimeS: 2,
    })
    const stream = await RawStream.open(cacheUrl, undefined, undefined, undefined, {
      [TOKEN_HEADER]: shortLived,
    })
    expect(stream.head).toMatch(/^HTTP\/1\.1 101 /)
    stream.send('[1,"who","query",null,null]\n')
    await waitUntil(() => stream.answers.length === 1, 'the first answer')
    expect(stream.answers[0]![1]).toBe(200)
    await waitUntil(() => stream.goneAway, 'goaway at expiry', 10_000)
    // Past the clock tolerance (5 s): refused, and the procedure does not run.
    await new Promise((resolve) => setTimeout(resolve, 5_500))
    const before = ran
    stream.send('[2,"who","query",null,null]\n')
    await waitUntil(() => stream.answers.some(([id]) => id === 2), 'the second answer')
    const second = stream.answers.find(([id]) => id === 2)!
    expect(second[1]).toBe(401)
    expect(ran).toBe(before)
    stream.socket.destroy()
  }, 30_000)

  it('a fresh token in an _auth frame keeps the connection going past the first token', async () => {
    const token = (lifetimeS: number) =>
      mintCallToken({
        secret: key(SECRET),
        caller: 'tester',
        audience: 'tok-cache',
        namespace: NS,
        lifetimeS,
      })
    const stream = await RawStream.open(cacheUrl, undefined, undefined, undefined, {
      [TOKEN_HEADER]: await token(2),
    })
    // A forged renewal is refused and changes nothing.
    const forged = await mintCallToken({
      secret: key(OTHER_SECRET),
      caller: 'tester',
      audience: 'tok-cache',
      namespace: NS,
    })
    stream.send(`${JSON.stringify([1, '_auth', 'mutation', { token: forged }, null])}\n`)
    stream.send(`${JSON.stringify([2, '_auth', 'mutation', { token: await token(60) }, null])}\n`)
    await waitUntil(() => stream.answers.length === 2, 'both _auth answers')
    expect(stream.answers.find(([id]) => id === 1)![1]).toBe(401)
    expect(stream.answers.find(([id]) => id === 2)![1]).toBe(200)
    await new Promise((resolve) => setTimeout(resolve, 7_500))
    stream.send('[3,"who","query",null,null]\n')
    await waitUntil(
      () => stream.answers.some(([id]) => id === 3),
      'the call after the first expiry',
    )
    expect(stream.answers.find(([id]) => id === 3)![1]).toBe(200)
    expect(stream.goneAway).toBe(false)
    stream.socket.destroy()
  }, 30_000)
})
