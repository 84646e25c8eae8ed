import { afterAll, beforeAll, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import type { RunningGateway } from '../../framework/gateway/start-gateway.js'
import { defineGateway } from '../../framework/index.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import { faultRow } from '../support/fault-summary.js'
import { randomValue, seeded } from '../support/fuzz.js'
import { back, front, served, startTestGateway } from '../support/gateway-services.js'
import { startInProcess } from '../support/in-process.js'
import { raw } from '../support/raw-request.js'
import { waitFor } from '../support/wait.js'

const NS = 'gateway-fuzz'
let etcd: EtcdServer
const instances: RunningInstance[] = []
let gateway: RunningGateway

beforeAll(async () => {
  etcd = await EtcdServer.start()
  instances.push(await startInProcess(back, etcd.endpoint, NS))
  const frontInstance = await startInProcess(front, etcd.endpoint, NS)
  instances.push(frontInstance)
  gateway = await startTestGateway(
    etcd.endpoint,
    NS,
    defineGateway({
      cors: { origins: ['http://127.0.0.1:5173'] },
      limits: { maxBodyBytes: 8192, maxBatch: 8, maxHeaderBytes: 8192 },
    }),
  )
  await waitFor('front sees back, the gateway sees front', () =>
    Boolean(
      frontInstance.deps?.resolvers.get('gw-back')?.endpoints.length &&
        gateway.dependencies.resolvers.get('gw-front')?.endpoints.length,
    ),
  )
})

afterAll(async () => {
  await gateway?.stop()
  for (const instance of instances) await instance.stop()
  await etcd?.dispose()
})

/** Names a client may put in a path: exposed (twice as likely), internal, unknown, hostile. */
const NAMES = [
  'gw-front.echo',
  'gw-front.who',
  'gw-front.save',
  'gw-front.nested.ping',
  'gw-front.echo',
  'gw-front.who',
  'gw-front.save',
  'gw-front.nested.ping',
  'gw-front.secret',
  'gw-back.who',
  'gw-front',
  'nope.x',
  '__proto__.who',
  'gw-front.__proto__',
  'gw-front.constructor',
  'constructor.prototype',
  '../gw-back.who',
  'gw-front.echo/../../gw-back.who',
  '',
  '.',
  'gw-front..echo',
]
/** Procedures that count a call on the front service when served (who also calls the back). */
const COUNTED = new Set(['gw-front.echo', 'gw-front.who', 'gw-front.save', 'gw-front.nested.ping'])

it('1,000 seeded requests on every gateway route: never a 5xx, always an error shape, nothing forwarded but what was served', async () => {
  const random = seeded(20261203)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!
  // Lone surrogates (the generator makes some) have no UTF-8 form: U+FFFD stands in.
  const uri = (text: string) => encodeURIComponent(text.replace(/[\ud800-\udfff]/g, '\ufffd'))
  const encode = (name: string) => (random() < 0.2 ? uri(name) : name.replace(/[^\x21-\x7e]/g, uri))
  const statuses = new Map<number, number>()
  const unexpected: string[] = []
  const before = { ...served }
  let frontServed = 0
  let whoServed = 0
  for (let i = 0; i < 1_000; i++) {
    const form = Math.floor(random() * 6)
    const names = Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(NAMES))
    // A third of the inputs fit echo and save (who and nested.ping take none and ignore any).
    const inputValue =
      random() < 0.65 ? randomValue(random, 4) : { text: 'x'.repeat(random() * 120) }
    const inputText =
      random() < 0.1
        ? '{"text":'
        : random() < 0.05
          ? 'x'.repeat(10_000)
          : JSON.stringify(inputValue)
    let method = pick(['GET', 'GET', 'GET', 'POST', 'POST', 'PUT', 'OPTIONS', 'DELETE', 'HEAD'])
    let path: string
    let body: string | undefined
    let batchNames = names
    switch (form) {
      case 0: // tRPC single
        path = `/trpc/${encode(names[0]!)}`
        batchNames = [names[0]!]
        break
      case 1: // tRPC batch
        path = `/trpc/${names.map(encode).join(',')}?batch=1`
        break
      case 2: {
        // plain JSON
        const [role, ...rest] = names[0]!.split('.')
        path = `/api/${encode(role ?? '')}/${rest.map(encode).join('/')}`
        batchNames = [names[0]!]
        break
      }
      case 3: // fixed paths
        path = pick(['/openapi.json', '/healthz', '/readyz', '/', '/trpc', '/api', '/api/'])
        method = pick(['GET', 'POST', 'OPTIONS'])
        batchNames = []
        break
      case 4: // junk in the path
        path = `/${pick(['trpc', 'api', 'x'])}/${uri(String(randomValue(random, 1)))}%${pick(['', 'E0%A4', 'zz', '2F'])}`
        batchNames = []
        break
      default: // a batch input keyed oddly
        path = `/trpc/${names.map(encode).join(',')}?batch=1`
        body = JSON.stringify(
          Object.fromEntries(
            names.map((_, n) => [pick([String(n), '__proto__', 'x', '-1']), inputValue]),
          ),
        )
        method = 'POST'
    }
    if (method === 'GET' && form !== 3 && random() < 0.8) {
      path += `${path.includes('?') ? '&' : '?'}input=${uri(
        form === 1 ? JSON.stringify({ 0: inputValue, 1: inputValue }) : inputText,
      )}`
    }
    if (method === 'POST' && body === undefined && random() < 0.9) body = inputText
    const headers: Record<string, string> = {}
    if (random() < 0.2)
      headers['x-request-id'] = pick([
        'ok-id',
        'r'.repeat(200),
        'a%b',
        '∑'.length > 0 ? 'id-2' : '',
      ])
    if (random() < 0.15)
      headers.origin = pick(['http://127.0.0.1:5173', 'http://evil.example', 'null'])
    if (random() < 0.1)
      headers['content-type'] = pick(['text/plain', 'application/json; charset=utf-8', 'x'])
    if (method === 'OPTIONS' && random() < 0.7)
      headers['access-control-request-method'] = pick(['GET', 'POST', 'PATCH'])
    let response: Awaited<ReturnType<typeof raw>>
    try {
      response = await raw(gateway.url, method, path, body, headers)
    } catch (err) {
      unexpected.push(`${method} ${path}: ${(err as Error).message}`)
      continue
    }
    statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
    const label = `${method} ${path.slice(0, 120)} → ${response.status} ${response.body.slice(0, 160)}`
    if (response.status >= 500) unexpected.push(label)
    if (method === 'HEAD' || response.status === 204) continue
    let parsed: unknown
    try {
      parsed = JSON.parse(response.body)
    } catch {
      unexpected.push(`${label} (not JSON)`)
      continue
    }
    const items = Array.isArray(parsed) ? parsed : [parsed]
    items.forEach((item, index) => {
      const answer = item as { error?: { data?: { code?: string } }; result?: unknown }
      const name = batchNames[Array.isArray(parsed) ? index : 0]
      if (answer?.error) {
        if (typeof answer.error.data?.code !== 'string') unexpected.push(`${label} (no tRPC shape)`)
        return
      }
      if (name !== undefined && COUNTED.has(name) && response.status < 300) {
        frontServed++
        if (name === 'gw-front.who') whoServed++
      }
    })
  }
  const total = [...statuses.values()].reduce((a, b) => a + b, 0)
  const row = faultRow(
    `gateway bad input: ${total} seeded requests (tRPC single and batch, /api, fixed paths, junk paths)`,
  )
  row.measured({
    calls: total,
    failed: unexpected.length,
    lost: instances.filter((instance) => !instance.registration.registered).length,
    instances: instances.length,
    note: `statuses ${[...statuses]
      .sort(([a], [b]) => a - b)
      .map(([status, n]) => `${status}×${n}`)
      .join(
        ', ',
      )}; ${frontServed} calls forwarded and served, no other; gateway and services alive`,
  })
  expect(unexpected).toEqual([])
  expect(total).toBe(1_000)
  // The services ran exactly the calls answered with a result: nothing refused was forwarded.
  expect(served.front - before.front).toBe(frontServed)
  expect(served.back - before.back).toBe(whoServed)
  expect((await raw(gateway.url, 'GET', '/healthz')).status).toBe(200)
  const after = await raw(gateway.url, 'GET', `/trpc/gw-front.who`)
  expect(after.status).toBe(200)
  expect(instances.every((instance) => instance.registration.registered)).toBe(true)
  row.passed()
})
