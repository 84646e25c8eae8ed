import { resolve } from 'node:path'
import { pino } from 'pino'
import { expect, it } from 'vitest'
import { connect } from '../../framework/client/connect.js'
import { isOverloadedAnswer } from '../../framework/protocol/overload.js'
import type busy from '../fixtures/app/services/busy/index.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { faultRow } from '../support/fault-summary.js'
import { REPO_ROOT, type SpawnedInstance } from '../support/instance.js'
import { waitFor } from '../support/wait.js'

const APP = resolve(REPO_ROOT, 'test/fixtures/app')
const cluster = useEtcd('overload')
const MiB = 1024 * 1024

function spawnBusy(namespace: string, maxInflight: number): SpawnedInstance {
  return cluster.spawn('busy', namespace, {
    appRoot: APP,
    env: { FRAMEWORK_MAX_INFLIGHT: String(maxInflight) },
  })
}

/** One figure of an instance's `/metrics` (the sum of its series matching `labels`). */
async function metric(url: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  let sum = 0
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) {
      if (labels && !line.includes(labels)) continue
      sum += Number(line.slice(line.lastIndexOf(' ') + 1))
    }
  }
  return sum
}

/** How many calls of the instance's procedures ran (the fixture counts them inside). */
async function ran(url: string): Promise<number> {
  const answer = (await (await fetch(`${url}/_rpc/ran`)).json()) as {
    result: { data: { queries: number; mutations: number } }
  }
  return answer.result.data.queries + answer.result.data.mutations
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

const round = (ms: number) => Math.round(ms * 10) / 10

it('one instance at ~10x its capacity: shed calls get 503 + Retry-After at once and never run, admitted ones succeed, RSS bounded', async () => {
  const row = faultRow(
    'overload: one instance offered ~10x its capacity (FRAMEWORK_MAX_INFLIGHT=4)',
  )
  const namespace = cluster.namespace()
  // Capacity: 4 in flight x 100 ms = 40 calls/s. Offered: 500 calls/s (5 every 10 ms).
  const LIMIT = 4
  const WORK_MS = 100
  const PER_TICK = 5
  const TICK_MS = 10
  const MAX_CALLS = 2_000
  const MAX_LOAD_MS = 6_000
  const instance = spawnBusy(namespace, LIMIT)
  await instance.waitForLog('registered in etcd', 60_000)
  const { url } = await instance.listening()
  // Warm: the first calls load code (zod, the router), which is not the load's growth.
  for (let i = 0; i < 50; i++)
    await fetch(`${url}/_rpc/work?input=${encodeURIComponent('{"ms":0}')}`)
  const rssBefore = await metric(url, 'process_resident_memory_bytes')
  const ranBefore = await ran(url)

  const admitted: number[] = []
  const shed: number[] = []
  const badShed: string[] = []
  const failures: string[] = []
  const calls: Promise<void>[] = []
  const query = `/_rpc/work?input=${encodeURIComponent(JSON.stringify({ ms: WORK_MS }))}`
  const one = async (i: number) => {
    const started = performance.now()
    try {
      // One in four a mutation: a shed mutation is as provably not run as a query.
      const response =
        i % 4 === 3
          ? await fetch(`${url}/_rpc/write`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ ms: WORK_MS }),
              signal: AbortSignal.timeout(30_000),
            })
          : await fetch(`${url}${query}`, { signal: AbortSignal.timeout(30_000) })
      const body = (await response.json()) as unknown
      const ms = performance.now() - started
      if (response.status === 200) admitted.push(ms)
      else if (response.status === 503) {
        shed.push(ms)
        if (response.headers.get('retry-after') !== '1' || !isOverloadedAnswer(503, body)) {
          badShed.push(`${response.headers.get('retry-after')} ${JSON.stringify(body)}`)
        }
      } else failures.push(`HTTP ${response.status} ${JSON.stringify(body)}`)
    } catch (err) {
      failures.push(String(err))
    }
  }
  const loadStarted = Date.now()
  for (let tick = 0; calls.length < MAX_CALLS && Date.now() - loadStarted < MAX_LOAD_MS; tick++) {
    for (let i = 0; i < PER_TICK; i++) calls.push(one(calls.length))
    // Paced against the clock, so a late tick does not lower the offered rate.
    const next = loadStarted + (tick + 1) * TICK_MS
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - Date.now())))
  }
  const offeredPerSecond = Math.round(calls.length / ((Date.now() - loadStarted) / 1000))
  await Promise.all(calls)
  const rssAfter = await metric(url, 'process_resident_memory_bytes')
  const ranDuring = (await ran(url)) - ranBefore
  const shedCounted = await metric(url, 'framework_server_shed_total')

  const growthMiB = Math.round((rssAfter - rssBefore) / MiB)
  row.measured({
    calls: calls.length,
    failed: failures.length,
    instances: 1,
    note: `offered ${offeredPerSecond}/s to a capacity of ${(LIMIT * 1000) / WORK_MS}/s; ${admitted.length} admitted (p99 ${round(percentile(admitted, 99))} ms for ${WORK_MS} ms of work), ${shed.length} shed (503 p50 ${round(percentile(shed, 50))} ms, p99 ${round(percentile(shed, 99))} ms, as seen by the test process); RSS ${Math.round(rssBefore / MiB)} -> ${Math.round(rssAfter / MiB)} MiB; 0 crashes`,
  })
  expect(failures.slice(0, 5)).toEqual([])
  expect(admitted.length + shed.length).toBe(calls.length)
  expect(shed.length).toBeGreaterThan(calls.length / 2)
  expect(badShed.slice(0, 5)).toEqual([])
  // Exactly the admitted calls ran; the instance counted every shed one.
  expect(ranDuring).toBe(admitted.length)
  expect(shedCounted).toBe(shed.length)
  // Still the same process, alive and answering.
  expect(instance.child.exitCode).toBeNull()
  expect(instance.child.signalCode).toBeNull()
  expect((await fetch(`${url}/healthz`)).status).toBe(200)
  // A sanity bound, not a goal: what shedding prevents is growth with the offered load.
  expect(growthMiB).toBeLessThan(200)
  row.passed()
}, 120_000)

it('two instances: queries one sheds are retried on the other, 0 failed calls while total capacity suffices', async () => {
  const row = faultRow(
    'overload: 2 instances at FRAMEWORK_MAX_INFLIGHT=4, unevenly balanced calls (shed ones retried elsewhere)',
  )
  const namespace = cluster.namespace()
  const LIMIT = 4
  // Never more than 7 in flight: one instance full (4) leaves room on the other for a retry.
  const CONCURRENCY = 7
  const MAX_CALLS = 1_500
  const MAX_LOAD_MS = 20_000
  const instances = [spawnBusy(namespace, LIMIT), spawnBusy(namespace, LIMIT)]
  for (const instance of instances) await instance.waitForLog('registered in etcd', 60_000)
  const urls = await Promise.all(
    instances.map(async (instance) => (await instance.listening()).url),
  )
  // `random` balancing piles calls on one instance now and then: that is what gets shed.
  const connection = connect<{ busy: typeof busy }>({
    deps: { busy: { balancer: 'random' } },
    etcdEndpoints: cluster.etcd.endpoint,
    namespace,
    log: pino({ level: 'silent' }),
  })
  try {
    const { deps } = connection
    await waitFor('both instances listed', async () => {
      const seen = new Set<string>()
      for (let i = 0; i < 20; i++) seen.add((await deps.busy.ran()).instance)
      return seen.size === 2
    })
    const ranBefore = (await Promise.all(urls.map(ran))).reduce((a, b) => a + b, 0)
    let issued = 0
    const failures: string[] = []
    const latencies: number[] = []
    const loadStarted = Date.now()
    const worker = async (w: number) => {
      while (issued < MAX_CALLS && Date.now() - loadStarted < MAX_LOAD_MS) {
        const i = issued++
        const started = performance.now()
        try {
          // Mostly queries; every fifth a mutation, which a shed lets go elsewhere too.
          if ((i + w) % 5 === 0) await deps.busy.write({ ms: 20 })
          else await deps.busy.work({ ms: 20 })
          latencies.push(performance.now() - started)
        } catch (err) {
          failures.push((err as Error).message)
        }
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)))
    const ranDuring = (await Promise.all(urls.map(ran))).reduce((a, b) => a + b, 0) - ranBefore
    const shedBy = await Promise.all(urls.map((url) => metric(url, 'framework_server_shed_total')))
    const shedTotal = shedBy.reduce((a, b) => a + b, 0)
    row.measured({
      calls: issued,
      failed: failures.length,
      instances: 2,
      note: `${shedTotal} attempts shed (${shedBy.join(' + ')}), each retried on the other instance by the client; ${ranDuring} procedure runs for ${issued} calls; call p99 ${round(percentile(latencies, 99))} ms for 20 ms of work`,
    })
    expect(failures.slice(0, 5)).toEqual([])
    expect(shedTotal).toBeGreaterThan(0)
    // A shed attempt never ran and its retry did: one run per call, none lost, none doubled.
    expect(ranDuring).toBe(issued)
    for (const instance of instances) expect(instance.child.exitCode).toBeNull()
    row.passed()
  } finally {
    await connection.close()
  }
}, 120_000)
