/**
 * failover: steady bounded load from a client through discovery (`connect()`, the same clients
 * as `ctx.deps`) to 3 `cache` instances (processes, default TTL 5 s); during it: kill -9 one,
 * SIGTERM one, start two. Per event: failed calls, p99 latency of calls started in the 2 s after
 * it against the steady state before the first event (the baseline), and the time until traffic
 * is even again over the instances then alive (every one serving ≥ half its fair share in a
 * sliding 500 ms window, no call served by a departed one).
 */
import { loadavg } from 'node:os'
import { EtcdServer } from '../framework/cli/local-etcd.js'
import { connect } from '../framework/index.js'
import type cache from '../services/cache/index.js'
import { markdownTable, type SummaryRow, writeResult } from './harness.js'
import { benchEnv, type LoggingChild, startInstance } from './instance.js'
import { benchLog, fixed, percentiles, sleep } from './support.js'

const NAMESPACE = 'bench-failover'
const WORKERS = 8
const PAUSE_MS = 5
const MAX_CALLS = 80_000
const STEADY_FROM_MS = 1_000
const KILL_AT_MS = 4_000
const TERM_AT_MS = 8_000
const START_AT_MS = 12_000
const END_AT_MS = 20_000
const AFTER_MS = 2_000
const WINDOW_MS = 500
const STEP_MS = 100

interface Sample {
  start: number
  end: number
  servedBy?: string
  error?: string
}

interface EventResult {
  event: string
  atMs: number
  failed: number
  calls: number
  p50Ms: number
  p99Ms: number
  p99VsSteady: number
  evenAfterMs: number | undefined
}

export async function run(): Promise<{ table: string; summary: SummaryRow[] }> {
  const etcd = await EtcdServer.start()
  const env = { ...benchEnv(etcd.endpoint, NAMESPACE), FRAMEWORK_TTL: '5' }
  const instances: LoggingChild[] = []
  const spawnCache = () => {
    const instance = startInstance('cache', env)
    instances.push(instance)
    return instance
  }
  const connection = connect<{ cache: typeof cache }>({
    deps: { cache: true },
    etcdEndpoints: etcd.endpoint,
    namespace: NAMESPACE,
    // Ejections are expected here; keep the table readable.
    log: benchLog('error'),
  })
  try {
    const initial = [spawnCache(), spawnCache(), spawnCache()]
    const ids: string[] = []
    for (const instance of initial) {
      ids.push((await instance.listening()).id)
      await instance.waitForLog('registered in etcd', 30_000)
    }
    const resolver = connection.dependencies.resolvers.get('cache')!
    await resolver.whenListed(10_000)
    for (let i = 0; resolver.endpoints.length < 3; i++) {
      if (i > 500) throw new Error('the client never saw 3 cache instances')
      await sleep(20)
    }
    const [killed, terminated, survivor] = ids as [string, string, string]

    const samples: Sample[] = []
    const origin = performance.now()
    const at = () => performance.now() - origin
    let stopped = false
    const worker = async () => {
      while (!stopped && samples.length < MAX_CALLS && at() < END_AT_MS) {
        const start = at()
        try {
          const { instance } = await connection.deps.cache.get({ key: 'k' })
          samples.push({ start, end: at(), servedBy: instance })
        } catch (err) {
          samples.push({ start, end: at(), error: (err as Error).message })
        }
        await sleep(PAUSE_MS)
      }
    }
    const load = Promise.all(Array.from({ length: WORKERS }, worker))

    await sleep(KILL_AT_MS - at())
    const killAt = at()
    await initial[0]!.kill('SIGKILL')
    await sleep(TERM_AT_MS - at())
    const termAt = at()
    const termExit = initial[1]!.kill('SIGTERM')
    await sleep(START_AT_MS - at())
    const startAt = at()
    const fresh = [spawnCache(), spawnCache()]
    const freshIds = await Promise.all(
      fresh.map(async (instance) => (await instance.listening()).id),
    )
    await Promise.all(fresh.map((instance) => instance.waitForLog('registered in etcd', 30_000)))
    const freshRegisteredAt = at()
    await load
    stopped = true
    const termCode = await termExit

    const steady = samples.filter((s) => s.start >= STEADY_FROM_MS && s.start < killAt)
    const steadyLatency = percentiles(steady.map((s) => s.end - s.start))
    const evenAfter = (from: number, until: number, alive: string[]): number | undefined => {
      for (let t = from; t + WINDOW_MS <= until; t += STEP_MS) {
        const window = samples.filter((s) => s.servedBy && s.end >= t && s.end < t + WINDOW_MS)
        if (window.length === 0) continue
        const counts = new Map<string, number>()
        for (const s of window) counts.set(s.servedBy!, (counts.get(s.servedBy!) ?? 0) + 1)
        const fair = window.length / alive.length
        const even =
          [...counts.keys()].every((id) => alive.includes(id)) &&
          alive.every((id) => (counts.get(id) ?? 0) >= fair / 2)
        if (even) return Math.round(t + WINDOW_MS - from)
      }
      return undefined
    }
    const events = [
      { event: 'kill -9 one', atMs: killAt, until: termAt, alive: [terminated, survivor] },
      { event: 'SIGTERM one', atMs: termAt, until: startAt, alive: [survivor] },
      { event: 'start two', atMs: startAt, until: END_AT_MS, alive: [survivor, ...freshIds] },
      // The same event counted from when both new instances were registered: the 2 s after a
      // spawn are mostly two Node processes booting on a 2-core machine.
      {
        event: 'two new instances registered',
        atMs: freshRegisteredAt,
        until: END_AT_MS,
        alive: [survivor, ...freshIds],
      },
    ]
    const results: EventResult[] = events.map(({ event, atMs, until, alive }) => {
      const after = samples.filter((s) => s.start >= atMs && s.start < atMs + AFTER_MS)
      const latency = percentiles(after.map((s) => s.end - s.start))
      return {
        event,
        atMs: Math.round(atMs),
        failed: samples.filter((s) => s.error && s.start >= atMs && s.start < until).length,
        calls: after.length,
        p50Ms: latency.p50,
        p99Ms: latency.p99,
        p99VsSteady: Math.round((latency.p99 / steadyLatency.p99) * 100) / 100,
        evenAfterMs: evenAfter(atMs, until, alive),
      }
    })
    const failures = samples.filter((s) => s.error)
    const evenText = (ms: number | undefined) =>
      ms === undefined ? 'never' : ms <= WINDOW_MS ? `≤ ${WINDOW_MS} ms (first window)` : `${ms} ms`
    const totalSeconds = (samples.at(-1)?.end ?? END_AT_MS) / 1000
    const rows = [
      [
        `steady (${(STEADY_FROM_MS / 1000).toFixed(0)}–${(killAt / 1000).toFixed(1)} s, 3 instances)`,
        steady.length,
        failures.filter((s) => s.start < killAt).length,
        fixed(steadyLatency.p50),
        fixed(steadyLatency.p99),
        '1.00',
        '—',
      ],
      ...results.map((r) => [
        `${r.event} (at ${(r.atMs / 1000).toFixed(1)} s)`,
        r.calls,
        r.failed,
        fixed(r.p50Ms),
        fixed(r.p99Ms),
        fixed(r.p99VsSteady),
        evenText(r.evenAfterMs),
      ]),
    ]
    const table = markdownTable(
      [
        'phase',
        'calls (2 s after event)',
        'failed calls',
        'p50 ms',
        'p99 ms',
        'p99 × steady',
        'traffic even again after',
      ],
      rows,
    )
    const registeredAfter = Math.round(freshRegisteredAt - startAt)
    const summary: SummaryRow[] = [
      {
        benchmark: 'failover',
        figure: `failed queries of ${samples.length} (${Math.round(samples.length / totalSeconds)}/s)`,
        framework: String(failures.length),
        baseline: '–',
        ratio: '–',
        goal: `0 failed: ${failures.length === 0 ? 'met' : 'missed'}`,
      },
      ...results.map((r) => ({
        benchmark: 'failover',
        figure: `${r.event}: p99 in the 2 s after; even again after`,
        framework: `${fixed(r.p99Ms)} ms; ${evenText(r.evenAfterMs)}`,
        baseline: `steady p99 ${fixed(steadyLatency.p99)} ms`,
        ratio: `${fixed(r.p99VsSteady)}×`,
        goal: `${r.failed} failed`,
      })),
    ]
    writeResult('failover', {
      loadAverage: loadavg(),
      settings: {
        workers: WORKERS,
        pauseMs: PAUSE_MS,
        ttlSeconds: 5,
        timelineMs: {
          steadyFrom: STEADY_FROM_MS,
          kill: KILL_AT_MS,
          term: TERM_AT_MS,
          start: START_AT_MS,
          end: END_AT_MS,
        },
        evenRule: `every live instance ≥ half its fair share of calls in a ${WINDOW_MS} ms window, none served by a departed one`,
      },
      calls: samples.length,
      failed: failures.length,
      failures: failures.slice(0, 20),
      steady: steadyLatency,
      events: results,
      newInstancesRegisteredAfterMs: registeredAfter,
      servedByKilledAfterKill: samples.filter((s) => s.servedBy === killed && s.start > killAt)
        .length,
      sigtermExitCode: termCode,
      summary,
    })
    return {
      table: `${table}\n\nthe two new instances were registered ${registeredAfter} ms after being spawned (process boot); "even" counts from the spawn`,
      summary,
    }
  } finally {
    await connection.close()
    await Promise.all(instances.map((instance) => instance.kill('SIGKILL')))
    await etcd.dispose()
  }
}
