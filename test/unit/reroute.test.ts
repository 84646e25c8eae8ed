import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { DependencyClient } from '../../framework/client/dependency-client.js'
import { HttpTransport, TransportError } from '../../framework/client/http-transport.js'
import { RetryBudget } from '../../framework/client/retry-budget.js'
import { createBalancer } from '../../framework/discovery/balancers/index.js'
import { Endpoint } from '../../framework/discovery/endpoint.js'
import type { Resolver } from '../../framework/discovery/resolver.js'
import { instanceKey } from '../../framework/registry/record.js'
import { sampleRecord } from '../support/phone-book.js'

// A call that never reached an instance is a reroute, not a retry: it goes to another instance
// at once, mutations included, without spending the retry budget. The transport says which
// calls those are when an instance leaves (client/http-transport.ts `release`).

const servers: Server[] = []
const transports: HttpTransport[] = []

afterEach(async () => {
  await Promise.all(transports.splice(0).map((transport) => transport.close()))
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    server.close()
  }
})

async function listen(server: Server): Promise<string> {
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** A server answering every request as tRPC would (`{ served: name }`), counting them; upgrades held. */
async function instance(name: string) {
  const seen = { requests: 0, upgrades: [] as Socket[] }
  const server = createServer((req, res) => {
    seen.requests++
    req.resume()
    req.on('end', () =>
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ result: { data: { served: name } } })),
    )
  })
  server.on('upgrade', (_req, socket: Socket) => seen.upgrades.push(socket))
  const url = await listen(server)
  return {
    url,
    seen,
    endpoint: new Endpoint(instanceKey('shop', 'cache', name), record(name, url)),
  }
}

function record(id: string, url: string) {
  return sampleRecord('cache', id, url, { get: 'query', set: 'mutation' })
}

/** An endpoint whose port was open and is closed now: connections are refused. */
async function refused(name: string): Promise<Endpoint> {
  const server = createServer()
  const url = await listen(server)
  await new Promise((resolve) => server.close(resolve))
  return new Endpoint(instanceKey('shop', 'cache', name), record(name, url))
}

function transport(stream: boolean): HttpTransport {
  const made = new HttpTransport({ stream })
  transports.push(made)
  return made
}

function client(endpoints: Endpoint[], budget: RetryBudget): DependencyClient {
  const resolver: Resolver = {
    role: 'cache',
    stale: false,
    listed: true,
    lastError: undefined,
    endpoints,
    whenListed: async () => undefined,
    subscribe: () => () => undefined,
    close: async () => undefined,
  }
  return new DependencyClient({
    role: 'cache',
    namespace: 'shop',
    etcdEndpoints: ['http://127.0.0.1:2379'],
    resolver,
    transport: transport(false),
    balancer: createBalancer('round-robin'),
    budget,
    timeoutMs: 5_000,
    log: pino({ level: 'silent' }),
  })
}

/** How each of `calls` settled: the value, or the failure's reason and whether it was sent. */
async function outcomes(calls: Promise<unknown>[]) {
  return (await Promise.allSettled(calls)).map((result) =>
    result.status === 'fulfilled'
      ? result.value
      : result.reason instanceof TransportError
        ? { reason: result.reason.reason, sent: result.reason.sent }
        : String(result.reason),
  )
}

/** A budget with nothing in it: any retry is refused. */
const emptyBudget = () => new RetryBudget(0.2, 0)

describe('an instance leaving the phone book (transport.release)', () => {
  it('hands back the request calls queued for it as not sent, to go elsewhere; none reaches it', async () => {
    const a = await instance('a')
    const requests = transport(false)
    const calls = Array.from({ length: 5 }, () =>
      requests.send(a.url, 'mutation', 'set', { n: 1 }, 1_000, 1_000),
    )
    requests.release(a.url)
    expect(await outcomes(calls)).toEqual(Array(5).fill({ reason: 'leaving', sent: false }))
    expect(a.seen.requests).toBe(0)
  })

  it('hands back the calls waiting for its stream upgrade at once, as not sent', async () => {
    const a = await instance('a')
    const stream = transport(true)
    const calls = Array.from({ length: 5 }, () =>
      stream.send(a.url, 'mutation', 'set', { n: 1 }, 5_000, 5_000),
    )
    while (a.seen.upgrades.length === 0) await new Promise((resolve) => setTimeout(resolve, 5))
    stream.release(a.url)
    expect(await outcomes(calls)).toEqual(Array(5).fill({ reason: 'leaving', sent: false }))
  })
})

describe('DependencyClient: a call that never reached an instance', () => {
  it('goes to another healthy instance, mutations included, without spending the retry budget', async () => {
    const dead = await refused('dead')
    const alive = await instance('alive')
    const cache = client([dead, alive.endpoint], emptyBudget())
    // Round-robin over two: one of the two calls is placed on the dead instance first.
    expect(await outcomes([cache.call('set', { n: 1 }), cache.call('set', { n: 2 })])).toEqual([
      { served: 'alive' },
      { served: 'alive' },
    ])
    expect(alive.seen.requests).toBe(2)
    // The dead one was placed and refused (ejected for it), not skipped.
    expect(dead.ejections).toBe(1)
  })

  it('with every instance refusing: each is tried, then the call fails as unreachable', async () => {
    const dead = await Promise.all(['d1', 'd2', 'd3'].map(refused))
    const cache = client(dead, emptyBudget())
    const [failure] = await outcomes([cache.call('set', { n: 1 })])
    expect(String(failure)).toMatch(
      /cache\.set: instance d\d at \S+ failed \(cannot reach .*ECONNREFUSED/,
    )
    // Ejected as each refused, but for the last healthy one (never ejected).
    expect(dead.map((endpoint) => endpoint.ejections).sort()).toEqual([0, 1, 1])
  })

  it('is not rerouted when JSON cannot carry its input, and ejects no instance', async () => {
    const a = await instance('a')
    const b = await instance('b')
    const cache = client([a.endpoint, b.endpoint], new RetryBudget())
    const [failure] = await outcomes([cache.call('set', { n: 1n })])
    expect(String(failure)).toMatch(/the input of set is not JSON/)
    expect(a.seen.requests + b.seen.requests).toBe(0)
    expect([a.endpoint.ejections, b.endpoint.ejections]).toEqual([0, 0])
  })
})
