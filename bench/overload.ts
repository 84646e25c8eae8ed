/**
 * overload: what shedding costs and keeps. One instance (`FRAMEWORK_MAX_INFLIGHT=8`, a 50 ms
 * procedure: capacity 160 calls/s) is offered ~10x that, open loop (calls go out on a clock
 * whatever the answers do), for a bounded count and time, on each path a caller takes:
 *   /_rpc requests — undici GETs, as a peer in another language sends them
 *   RPC stream     — the framework's client (connect()), as ctx.deps sends them
 * Prints admitted p50/p99, shed p50/p99 (the time a caller waits for its 503), the shed share
 * and the instance's RSS before and after. Goal (issue 16): shed calls answer within 5 ms.
 */
import { loadavg } from 'node:os'
import { Agent, request } from 'undici'
import { EtcdServer } from '../framework/cli/local-etcd.js'
import { connect } from '../framework/index.js'
import { isOverloadedAnswer } from '../framework/protocol/overload.js'
import { markdownTable, type SummaryRow, writeResult } from './harness.js'
import { benchEnv } from './instance.js'
import type busyService from './overload-instance.js'
import { BenchChild, benchLog, fixed, type Percentiles, percentiles, sleep } from './support.js'

const NAMESPACE = 'bench-overload'
const MAX_INFLIGHT = 8
const WORK_MS = 50
const CAPACITY_PER_SECOND = (MAX_INFLIGHT * 1000) / WORK_MS
/** Offered: 16 calls every 10 ms = 1600/s, ~10x the capacity. */
const PER_TICK = 16
const TICK_MS = 10
const MAX_CALLS = 8_000
const MAX_LOAD_MS = 5_000
const SHED_GOAL_MS = 5

interface ModeResult {
  mode: string
  /** Shed requests timed inside the instance (request event → answer written); HTTP only. */
  instanceShed: Percentiles | undefined
  offeredPerSecond: number
  calls: number
  failed: number
  admitted: Percentiles
  shed: Percentiles
  shedShare: number
  rssBeforeMiB: number
  rssAfterMiB: number
}

async function rssMiB(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const match = /^process_resident_memory_bytes (\d+)/m.exec(text)
  return Math.round(Number(match?.[1]) / 2 ** 20)
}

/**
 * Sends `call` on a clock (PER_TICK every TICK_MS) until MAX_CALLS or MAX_LOAD_MS, and sorts
 * each answer's latency into admitted or shed.
 */
async function openLoop(
  mode: string,
  url: string,
  call: () => Promise<'admitted' | 'shed'>,
  instance: BenchChild,
  http: boolean,
): Promise<ModeResult> {
  await instanceShedTimes(instance)
  const rssBeforeMiB = await rssMiB(url)
  const admitted: number[] = []
  const shed: number[] = []
  let failed = 0
  const calls: Promise<void>[] = []
  const one = async () => {
    const started = performance.now()
    try {
      const outcome = await call()
      ;(outcome === 'admitted' ? admitted : shed).push(performance.now() - started)
    } catch {
      failed++
    }
  }
  const loadStarted = Date.now()
  for (let tick = 0; calls.length < MAX_CALLS && Date.now() - loadStarted < MAX_LOAD_MS; tick++) {
    for (let i = 0; i < PER_TICK; i++) calls.push(one())
    const next = loadStarted + (tick + 1) * TICK_MS
    await sleep(Math.max(0, next - Date.now()))
  }
  const offeredPerSecond = Math.round(calls.length / ((Date.now() - loadStarted) / 1000))
  await Promise.all(calls)
  const instanceShed = await instanceShedTimes(instance)
  return {
    mode,
    instanceShed: http ? percentiles(instanceShed) : undefined,
    offeredPerSecond,
    calls: calls.length,
    failed,
    admitted: percentiles(admitted),
    shed: percentiles(shed),
    shedShare: shed.length / calls.length,
    rssBeforeMiB,
    rssAfterMiB: await rssMiB(url),
  }
}

/**
 * The shed answer's own cost, without a load generator's queueing: the instance is held at its
 * limit by MAX_INFLIGHT long calls while one caller sends calls one after another, all shed.
 */
async function shedFloor(
  url: string,
  agent: Agent,
  viaRequest: () => Promise<'admitted' | 'shed'>,
  viaStream: () => Promise<'admitted' | 'shed'>,
): Promise<{ mode: string; shed: Percentiles }[]> {
  const hold = `/_rpc/work?input=${encodeURIComponent(JSON.stringify({ ms: 10_000 }))}`
  const holding = Array.from({ length: MAX_INFLIGHT }, () =>
    request(`${url}${hold}`, { dispatcher: agent }).then((response) => response.body.dump()),
  )
  // Full once a call is shed (the holding calls have started).
  while ((await viaRequest()) !== 'shed') await sleep(10)
  const floor = []
  for (const [mode, call] of [
    ['/_rpc requests (undici)', viaRequest],
    ['RPC stream (connect())', viaStream],
  ] as const) {
    const latencies: number[] = []
    for (let i = 0; i < 1_000; i++) {
      const started = performance.now()
      if ((await call()) === 'shed') latencies.push(performance.now() - started)
    }
    floor.push({ mode, shed: percentiles(latencies) })
  }
  await Promise.all(holding)
  return floor
}

/** The instance's own shed-request timings since the last ask (and forgets them). */
async function instanceShedTimes(instance: BenchChild): Promise<number[]> {
  const after = instance.messages.length
  instance.send({ type: 'shed-times' })
  return (await instance.next('shed-times', 10_000, after)).ms as number[]
}

export async function run(): Promise<{ table: string; summary: SummaryRow[] }> {
  const etcd = await EtcdServer.start()
  const instance = new BenchChild('overload-instance.ts', {
    env: { ...benchEnv(etcd.endpoint, NAMESPACE), FRAMEWORK_MAX_INFLIGHT: String(MAX_INFLIGHT) },
  })
  // Enough connections for a tick's burst; more only adds connection setup to the measured load.
  const agent = new Agent({ connections: 64 })
  const connection = connect<{ busy: typeof busyService }>({
    deps: { busy: true },
    etcdEndpoints: etcd.endpoint,
    namespace: NAMESPACE,
    log: benchLog('error'),
  })
  try {
    const url = (await instance.next('ready', 60_000)).url as string
    const path = `/_rpc/work?input=${encodeURIComponent(JSON.stringify({ ms: WORK_MS }))}`
    const viaRequest = async (): Promise<'admitted' | 'shed'> => {
      const response = await request(`${url}${path}`, { dispatcher: agent })
      const body = (await response.body.json()) as unknown
      if (response.statusCode === 200) return 'admitted'
      if (isOverloadedAnswer(response.statusCode, body) && response.headers['retry-after'] === '1')
        return 'shed'
      throw new Error(`HTTP ${response.statusCode}`)
    }
    const { busy } = connection.deps
    const viaStream = async (): Promise<'admitted' | 'shed'> => {
      try {
        await busy.work({ ms: WORK_MS })
        return 'admitted'
      } catch (err) {
        // One instance: nowhere else to go, so the shed reaches the caller as its 503.
        if ((err as { code?: string }).code === 'SERVICE_UNAVAILABLE') return 'shed'
        throw err
      }
    }
    // Warm both paths (code loading; undici's connections, as many as a tick's burst needs, so
    // the measured load does not open them).
    for (let i = 0; i < 20; i++) {
      await Promise.all(Array.from({ length: 2 * PER_TICK }, () => viaRequest()))
      await Promise.all(Array.from({ length: 2 * PER_TICK }, () => viaStream()))
    }
    const results = [
      await openLoop('/_rpc requests (undici)', url, viaRequest, instance, true),
      await openLoop('RPC stream (connect())', url, viaStream, instance, false),
    ]
    const floor = await shedFloor(url, agent, viaRequest, viaStream)
    const rows = results.map((r) => [
      r.mode,
      `${r.offeredPerSecond}/s (capacity ${CAPACITY_PER_SECOND}/s)`,
      r.calls,
      r.failed,
      `${fixed(r.admitted.p50)} / ${fixed(r.admitted.p99)}`,
      `${fixed(r.shed.p50)} / ${fixed(r.shed.p99)}`,
      r.instanceShed ? `${fixed(r.instanceShed.p50)} / ${fixed(r.instanceShed.p99)}` : '–',
      `${Math.round(r.shedShare * 100)}%`,
      `${r.rssBeforeMiB} → ${r.rssAfterMiB}`,
    ])
    rows.push(
      ...floor.map((f) => [
        `${f.mode}: instance held full, one caller at a time`,
        '–',
        f.shed.n,
        0,
        '–',
        `${fixed(f.shed.p50)} / ${fixed(f.shed.p99)}`,
        '–',
        '100%',
        '–',
      ]),
    )
    const table = markdownTable(
      [
        'path',
        'offered',
        'calls',
        'failed',
        `admitted p50 / p99 ms (${WORK_MS} ms work)`,
        'shed 503 p50 / p99 ms (caller)',
        'shed p50 / p99 ms inside the instance',
        'shed share',
        'instance RSS MiB',
      ],
      rows,
    )
    const summary: SummaryRow[] = [
      ...floor.map((f) => ({
        benchmark: 'overload',
        figure: `${f.mode}: shed 503 p99, instance full, one caller at a time`,
        framework: `${fixed(f.shed.p99)} ms`,
        baseline: '–',
        ratio: '–',
        goal: `shed ≤ ${SHED_GOAL_MS} ms: ${f.shed.p99 <= SHED_GOAL_MS ? 'met' : 'missed'}`,
      })),
      ...results.flatMap((r) =>
        r.instanceShed
          ? [
              {
                benchmark: 'overload',
                figure: `${r.mode}: shed p99 inside the instance at ~10x capacity`,
                framework: `${fixed(r.instanceShed.p99)} ms`,
                baseline: '–',
                ratio: '–',
                goal: `shed ≤ ${SHED_GOAL_MS} ms: ${r.instanceShed.p99 <= SHED_GOAL_MS ? 'met' : 'missed'}`,
              },
            ]
          : [],
      ),
      ...results.map((r) => ({
        benchmark: 'overload',
        figure: `${r.mode}: shed 503 p99 at ~10x capacity, as the caller sees it (admitted p99)`,
        framework: `${fixed(r.shed.p99)} ms (${fixed(r.admitted.p99)} ms)`,
        baseline: '–',
        ratio: '–',
        goal: `shed ≤ ${SHED_GOAL_MS} ms: ${r.shed.p99 <= SHED_GOAL_MS ? 'met' : 'missed'}`,
      })),
    ]
    writeResult('overload', {
      loadAverage: loadavg(),
      settings: {
        maxInflight: MAX_INFLIGHT,
        workMs: WORK_MS,
        capacityPerSecond: CAPACITY_PER_SECOND,
        offered: `${PER_TICK} every ${TICK_MS} ms`,
        maxCalls: MAX_CALLS,
        maxLoadMs: MAX_LOAD_MS,
      },
      results,
      floor,
      summary,
    })
    return {
      table: `${table}\n\nlatencies as the caller sees them (this process, same machine), except "inside the instance" (its request event to its answer written); load average ${loadavg()
        .map((value) => value.toFixed(1))
        .join(' ')}; RSS from the instance's /metrics`,
      summary,
    }
  } finally {
    await connection.close()
    await agent.close()
    if (instance.running) {
      instance.send({ type: 'stop' })
      await Promise.race([instance.exited, sleep(5_000)])
      if (instance.running) instance.child.kill('SIGKILL')
    }
    await etcd.dispose()
  }
}
