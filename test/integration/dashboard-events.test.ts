import { type ClientRequest, get, type IncomingMessage } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Dashboard } from '../../framework/cli/dev/dashboard/dashboard-server.js'
import { DevCollector } from '../../framework/telemetry/dev-collector.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { waitFor } from '../support/wait.js'

// The dashboard's event stream (SSE) in this process, on the test's etcd: pages that disconnect
// mid-stream leave no connection, socket or listener behind.

const fixture = useEtcd('dashboard-events')
let collector: DevCollector
let dashboard: Dashboard

beforeAll(async () => {
  collector = await DevCollector.start()
  dashboard = await Dashboard.start({
    etcdEndpoints: [fixture.etcd.endpoint],
    namespace: fixture.namespace(),
    collector,
    scrapeMs: 200,
  })
})
afterAll(async () => {
  await dashboard?.close()
  await collector?.close()
})

/** Sockets (TCP handles) this process holds: both ends of each loopback connection count. */
const sockets = () =>
  process.getActiveResourcesInfo().filter((kind) => kind === 'TCPSocketWrap').length

const serverConnections = () =>
  new Promise<number>((resolve, reject) =>
    dashboard.server.getConnections((err, count) => (err ? reject(err) : resolve(count))),
  )

/** Opens the event stream; resolves once its first event (the topology) arrived. */
function openStream(): Promise<{ request: ClientRequest; response: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const request = get(`${dashboard.url}api/events`, (response) => {
      let text = ''
      response.setEncoding('utf8')
      const onData = (chunk: string) => {
        text += chunk
        if (text.includes('event: topology\n')) {
          response.off('data', onData)
          resolve({ request, response })
        }
      }
      response.on('data', onData)
      response.on('error', () => undefined)
    })
    request.on('error', reject)
  })
}

/** Waits until the dashboard holds no stream and the counts are back to `base`. */
async function settled(base: { sockets: number; connections: number }) {
  await waitFor(
    'streams closed, connections and sockets back to where they were',
    async () =>
      dashboard.streams === 0 &&
      (await serverConnections()) === base.connections &&
      sockets() === base.sockets,
    15_000,
    50,
  )
}

describe('dashboard event stream', () => {
  it('200 connect/disconnect cycles leave no stream, connection or socket behind (and held ones are counted)', async () => {
    // Nothing open yet; the phone book listed and watched (the etcd client's socket is open).
    await dashboard.whenListed(10_000)
    const base = { sockets: sockets(), connections: await serverConnections() }

    // The measures can go up: 10 streams held open are seen by each.
    const held = await Promise.all(Array.from({ length: 10 }, openStream))
    expect(dashboard.streams).toBe(10)
    expect(await serverConnections()).toBe(base.connections + 10)
    expect(sockets()).toBeGreaterThanOrEqual(base.sockets + 20)
    const heldCounts = { streams: dashboard.streams, sockets: sockets() }
    for (const { request } of held) request.destroy()
    await settled(base)

    // 200 pages that go away mid-stream, 10 at a time.
    for (let batch = 0; batch < 20; batch++) {
      const streams = await Promise.all(Array.from({ length: 10 }, openStream))
      for (const { request } of streams) request.destroy()
    }
    await settled(base)
    const after = {
      streams: dashboard.streams,
      sockets: sockets(),
      connections: await serverConnections(),
    }
    expect(after).toEqual({ streams: 0, sockets: base.sockets, connections: base.connections })
    console.log(
      `sockets before ${base.sockets}, with 10 streams held ${heldCounts.sockets} (${heldCounts.streams} streams), after 200 cycles ${after.sockets}`,
    )
  }, 120_000)
})

describe('the call form takes calls from the dashboard page only', () => {
  const post = (
    headers: Record<string, string>,
    body = '{"target":"cache.get","input":{"key":"a"}}',
  ) => fetch(`${dashboard.url}api/call`, { method: 'POST', headers, body })

  it('refuses a post that is not JSON, or comes from another origin, with 403 and why', async () => {
    const plain = await post({ 'content-type': 'text/plain' })
    expect(plain.status).toBe(403)
    expect(((await plain.json()) as { error: string }).error).toMatch(/application\/json/)
    const foreign = await post({
      'content-type': 'application/json',
      origin: 'http://evil.example',
    })
    expect(foreign.status).toBe(403)
    expect(((await foreign.json()) as { error: string }).error).toMatch(/evil\.example/)
    // The page's own kind of request gets through to the call (no cache runs here: 503).
    const own = await post({
      'content-type': 'application/json',
      origin: dashboard.url.replace(/\/$/, ''),
    })
    expect(own.status).not.toBe(403)
  })
})
