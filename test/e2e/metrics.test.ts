import { execFile } from 'node:child_process'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { type MetricSample, parseSamples, sumSamples } from '../../framework/cli/metrics-text.js'
import { API_GET, CallLoop } from '../support/call-loop.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { CLI, REPO_ROOT } from '../support/instance.js'
import { countBy, startExampleApp, startRegistered } from '../support/spawned-app.js'
import { waitFor } from '../support/wait.js'

// A scripted workload against real processes (three caches, an api; real etcd), then each
// one's GET /metrics: the counts must be exactly what the workload caused — calls by procedure
// and status as the test sent them, the api's cache calls as the caches served them, and
// retries and ejections as the api's own log lines tell them.

const TTL = 2
const cluster = useEtcd('metrics', TTL)
const spawn = (role: string, namespace: string) => cluster.spawn(role, namespace)

const NAMES = new Set([
  'framework_server_calls_total',
  'framework_client_calls_total',
  'framework_client_attempt_duration_seconds_count',
  'framework_client_retries_total',
  'framework_client_reroutes_total',
  'framework_client_ejections_total',
  'framework_resolver_instances',
  'framework_rpc_streams_open',
  'framework_registration_registered',
])

async function scrape(url: string): Promise<MetricSample[]> {
  const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) })
  expect(response.status).toBe(200)
  return parseSamples(await response.text(), NAMES)
}

const served = (samples: MetricSample[], labels: Record<string, string>) =>
  sumSamples(samples, 'framework_server_calls_total', labels)
const cacheCalls = (samples: MetricSample[], labels: Record<string, string> = {}) =>
  sumSamples(samples, 'framework_client_calls_total', { role: 'cache', ...labels })
const ofCache = (samples: MetricSample[], name: string) =>
  sumSamples(samples, name, { role: 'cache' })

/** One call to the api; its status and (on success) the cache instance that served it. */
async function call(
  url: string,
  init?: RequestInit,
): Promise<{ status: number; servedBy?: string }> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) })
  const body = (await response.json()) as { result?: { data?: { servedBy?: string } } }
  return { status: response.status, servedBy: body.result?.data?.servedBy }
}

describe('/metrics after a scripted workload (real processes, real etcd)', () => {
  it('holds the exact counts of calls, retries and ejections the workload caused, kill -9 of a cache included', async () => {
    const { caches, api } = await startExampleApp(spawn, cluster.namespace())
    const PUTS = 40
    const GETS = 60
    const BAD = 7
    const UNKNOWN = 3
    const answered: string[] = []

    // Phase 1, one call at a time: writes through tRPC's adapter, reads on the lean path, bad
    // input (400: the api never calls the cache) and an unknown procedure (404).
    for (let i = 0; i < PUTS; i++) {
      const { status, servedBy } = await call(`${api.url}/trpc/put`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ key: `k${i}`, value: `v${i}` }),
      })
      expect(status).toBe(200)
      answered.push(`set ${servedBy}`)
    }
    for (let i = 0; i < GETS; i++) {
      const input = encodeURIComponent(JSON.stringify({ key: `k${i % PUTS}` }))
      const { status, servedBy } = await call(`${api.url}/_rpc/get?input=${input}`)
      expect(status).toBe(200)
      answered.push(`get ${servedBy}`)
    }
    for (let i = 0; i < BAD; i++) {
      const input = encodeURIComponent(JSON.stringify({ key: '' }))
      expect((await call(`${api.url}/trpc/get?input=${input}`)).status).toBe(400)
    }
    for (let i = 0; i < UNKNOWN; i++) {
      expect((await call(`${api.url}/_rpc/no.such.procedure`)).status).toBe(404)
    }
    const countOf = (line: string) => answered.filter((entry) => entry === line).length

    const apiBefore = await scrape(api.url)
    expect(served(apiBefore, { procedure: 'put', kind: 'mutation', code: '200' })).toBe(PUTS)
    expect(served(apiBefore, { procedure: 'get', kind: 'query', code: '200' })).toBe(GETS)
    expect(served(apiBefore, { procedure: 'get', kind: 'query', code: '400' })).toBe(BAD)
    expect(served(apiBefore, { procedure: 'unknown', kind: 'query', code: '404' })).toBe(UNKNOWN)
    expect(served(apiBefore, {})).toBe(PUTS + GETS + BAD + UNKNOWN)
    expect(cacheCalls(apiBefore, { procedure: 'set', outcome: 'ok' })).toBe(PUTS)
    expect(cacheCalls(apiBefore, { procedure: 'get', outcome: 'ok' })).toBe(GETS)
    expect(cacheCalls(apiBefore)).toBe(PUTS + GETS)
    expect(ofCache(apiBefore, 'framework_client_attempt_duration_seconds_count')).toBe(PUTS + GETS)
    expect(ofCache(apiBefore, 'framework_client_retries_total')).toBe(0)
    expect(ofCache(apiBefore, 'framework_client_ejections_total')).toBe(0)
    expect(
      sumSamples(apiBefore, 'framework_resolver_instances', { role: 'cache', state: 'live' }),
    ).toBe(3)
    // Every cache call the api counted, a cache counted as served: the same calls, per instance.
    let servedAtCaches = 0
    for (const cache of caches) {
      const samples = await scrape(cache.url)
      const sets = served(samples, { procedure: 'set', code: '200' })
      const gets = served(samples, { procedure: 'get', code: '200' })
      expect(sets, `set calls served by ${cache.id}`).toBe(countOf(`set ${cache.id}`))
      expect(gets, `get calls served by ${cache.id}`).toBe(countOf(`get ${cache.id}`))
      expect(served(samples, {})).toBe(sets + gets)
      servedAtCaches += sets + gets
    }
    expect(servedAtCaches).toBe(cacheCalls(apiBefore))

    // Phase 2: reads from 8 workers; one cache is killed (-9) while they run.
    const victim = caches[0]!
    // Keys phase 1 did not write: every answer is a miss, which the loop checks.
    const target = { ...API_GET, input: (n: number) => ({ key: `unset${n % 50}` }) }
    const loop = new CallLoop(api.url, 1_500, { concurrency: 8, pauseMs: 2, maxMs: 60_000, target })
    await loop.reached(300)
    await victim.instance.kill('SIGKILL')
    await loop.done
    expect(loop.failures).toEqual([])
    expect(loop.samples).toHaveLength(1_500)
    const byCache = countBy(loop.samples)
    expect(byCache[victim.id], 'the victim served calls before the kill').toBeGreaterThan(0)

    const apiAfter = await scrape(api.url)
    const lines = api.instance.lines
    const ejectionLines = lines.filter((line) => line.msg === 'instance ejected').length
    const retryLines = lines.filter(
      (line) => line.msg === 'call retried on another instance',
    ).length
    const retries = ofCache(apiAfter, 'framework_client_retries_total')
    const reroutes = ofCache(apiAfter, 'framework_client_reroutes_total')
    const ejections = ofCache(apiAfter, 'framework_client_ejections_total')
    const attempts = ofCache(apiAfter, 'framework_client_attempt_duration_seconds_count')
    const calls = cacheCalls(apiAfter)
    console.log(
      `metrics after the workload: api served ${served(apiAfter, {})} calls; cache calls ${calls}, attempts ${attempts}, retries ${retries} (${retryLines} logged), reroutes ${reroutes}, ejections ${ejections} (${ejectionLines} logged)`,
    )
    expect(served(apiAfter, { procedure: 'get', kind: 'query', code: '200' })).toBe(GETS + 1_500)
    expect(served(apiAfter, { procedure: 'put', kind: 'mutation', code: '200' })).toBe(PUTS)
    expect(served(apiAfter, {})).toBe(PUTS + GETS + BAD + UNKNOWN + 1_500)
    expect(cacheCalls(apiAfter, { procedure: 'get', outcome: 'ok' })).toBe(GETS + 1_500)
    expect(calls).toBe(PUTS + GETS + 1_500)
    // The kill was felt, and the counters say exactly what the api logged.
    expect(ejections).toBeGreaterThan(0)
    expect(ejections).toBe(ejectionLines)
    expect(retries).toBe(retryLines)
    expect(retries + reroutes).toBeGreaterThan(0)
    // Every attempt either answered its call or was followed by a retry or a reroute.
    expect(attempts).toBe(calls + retries + reroutes)
    // The survivors served exactly the calls whose answers name them.
    for (const cache of caches.slice(1)) {
      const samples = await scrape(cache.url)
      expect(served(samples, { procedure: 'get', code: '200' }), cache.id).toBe(
        countOf(`get ${cache.id}`) + (byCache[cache.id] ?? 0),
      )
    }
    // Once the victim's record expired, the api's resolver and streams show two caches.
    await waitFor(
      "the api's metrics to show 2 live caches, none ejected, 2 client streams",
      async () => {
        const samples = await scrape(api.url)
        const state = (s: string) =>
          sumSamples(samples, 'framework_resolver_instances', { role: 'cache', state: s })
        return (
          state('live') === 2 &&
          state('ejected') === 0 &&
          sumSamples(samples, 'framework_rpc_streams_open', { side: 'client' }) === 2
        )
      },
      TTL * 1000 + 10_000,
    )
  }, 120_000)
})

/** `framework <args>` against the fixture's etcd in `namespace`; its exit code and output. */
async function cli(args: string[], namespace: string) {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...cluster.env(namespace) },
    timeout: 20_000,
  })
  return stdout
}

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('framework ps: calls/s and 5xx share per instance, from /metrics', () => {
  it('one scrape: the average since start; --window: two scrapes; an instance it cannot scrape shows –', async () => {
    const namespace = cluster.namespace()
    const kitchen = await startRegistered(
      (role, ns) => cluster.spawn(role, ns, { appRoot: join(REPO_ROOT, 'test/fixtures/app') }),
      'kitchen',
      namespace,
    )
    // A record whose instance does not answer: a copy of the kitchen's, at a closed port.
    const record = JSON.parse((await cluster.probe.client.get(kitchen.key).string())!) as {
      id: string
      url: string
    }
    const ghostKey = kitchen.key.replace(kitchen.id, 'kitchen-ghost')
    const ghostUrl = `http://127.0.0.1:${await closedPort()}`
    await cluster.probe.client
      .put(ghostKey)
      .value(JSON.stringify({ ...record, id: 'kitchen-ghost', url: ghostUrl }))
    try {
      const OK = 20
      const FAILED = 5
      for (let i = 0; i < OK; i++) {
        const input = encodeURIComponent(JSON.stringify({ text: `t${i}` }))
        expect((await call(`${kitchen.url}/_rpc/echo?input=${input}`)).status).toBe(200)
      }
      for (let i = 0; i < FAILED; i++) {
        expect((await call(`${kitchen.url}/_rpc/fail`)).status).toBe(500)
      }
      type Row = {
        id: string
        calls: { callsPerSecond: number; errorRate: number; windowSeconds: number } | null
      }
      const rows = (JSON.parse(await cli(['ps', '--json'], namespace)) as { instances: Row[] })
        .instances
      const live = rows.find((row) => row.id === kitchen.id)!
      const ghost = rows.find((row) => row.id === 'kitchen-ghost')!
      expect(ghost.calls).toBeNull()
      expect(live.calls!.callsPerSecond * live.calls!.windowSeconds).toBeCloseTo(OK + FAILED, 6)
      expect(live.calls!.errorRate).toBeCloseTo(FAILED / (OK + FAILED), 9)

      // Two scrapes 1 s apart with no calls in between: nothing now, whatever came before.
      const windowed = (
        JSON.parse(await cli(['ps', '--json', '--window', '1'], namespace)) as { instances: Row[] }
      ).instances.find((row) => row.id === kitchen.id)!
      expect(windowed.calls).toMatchObject({ callsPerSecond: 0, errorRate: 0 })
      expect(windowed.calls!.windowSeconds).toBeGreaterThanOrEqual(1)

      const table = (await cli(['ps'], namespace)).split('\n')
      expect(table[0]).toMatch(/calls\/s\s+5xx$/)
      expect(table.find((line) => line.includes('kitchen-ghost'))).toMatch(/–\s+–$/)
      expect(table.find((line) => line.includes(kitchen.id))).toMatch(/\/s\s+20\.0%$/)
    } finally {
      await cluster.probe.client.delete().key(ghostKey)
    }
  }, 60_000)
})
