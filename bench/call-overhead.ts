/**
 * call-overhead: what a service-to-service call costs. Same payload (cache.get of a hit, input
 * validated), two processes on 127.0.0.1:
 *   raw       — node:http server + undici.request (no validation, no framework)
 *   node:net echo (floor) — a bare socket answering each frame at once (bench/net-echo.ts): what
 *               is left of a sequential call is two processes waking up and their syscalls
 *   trpc      — a plain @trpc/client httpLink to the standard adapter (/trpc) of a cache instance
 *               of its own
 *   ctx.deps  — the framework's client through etcd discovery to the same instance, over the RPC
 *               stream (default)
 *   ctx.deps (requests) — the same client with the stream off: single and micro-batched requests
 *   moleculer 0.14, moleculer 0.15 — Moleculer, TCP transporter between two brokers held to
 *               127.0.0.1 (fastest-validator on), one node per release; each checked at start to
 *               answer cache.get's payload and refuse { key: 1 } with a ValidationError
 *   ctx.deps, tracing 1% / 100% — ctx.deps to a cache instance of its own that traces (OTLP/HTTP
 *               to a receiver process, `parentbased_traceidratio` at 0.01 / `always_on`): the
 *               cost of a SERVER span per served call. Metrics are on in every framework row.
 *   ctx.deps, token auth — ctx.deps to a cache instance of its own that requires call tokens
 *               (FRAMEWORK_SECRET set on both sides): a token per callee role, minted once and
 *               renewed every ~40 s, checked at the stream's upgrade (and in _auth frames).
 * Sequential (7 interleaved rounds of 2,000 calls, the median round by p50) and 100 concurrent
 * (3 rounds, the median by calls/s).
 * The goals (issue 18) hold against both Moleculer releases: met only if met against each.
 * Then each service side once more under --cpu-prof (service-profile.ts): where the CPU goes.
 * Also: how long a call takes to fail when the role has no live instance (SERVICE_UNAVAILABLE
 * "at once", README "How it behaves"; the tests only check that it does not wait for a deadline).
 */
import { spawn } from 'node:child_process'
import { isDeepStrictEqual } from 'node:util'
import { createTRPCClient, httpLink } from '@trpc/client'
import { Agent, request } from 'undici'
import { EtcdServer } from '../framework/cli/local-etcd.js'
import type cache from '../services/cache/index.js'
import { builtConnect, startBuiltInstance } from './built.js'
import {
  MEASUREMENT_COLUMNS,
  type Measurement,
  markdownTable,
  measure,
  measureInterleaved,
  type SummaryRow,
  writeResult,
} from './harness.js'
import { benchEnv, LoggingChild } from './instance.js'
import { type MoleculerBaseline, startMoleculer } from './moleculer-client.js'
import { MOLECULER_VERSIONS, type MoleculerVersion } from './moleculer-package.js'
import { netEchoCaller } from './net-echo-client.js'
import { profileServices } from './service-profile.js'

/** Issue 18's goals: ctx.deps calls/s at 100 concurrent ≥ this × Moleculer's (both releases)… */
const GOAL_CALLS_RATIO = 1.5
/** …and ctx.deps's sequential p50 ≤ this × Moleculer's (both releases). */
const GOAL_P50_RATIO = 0.8

/**
 * Sequential runs more, shorter rounds than the concurrent mode, and its median round is the one
 * with the median p50 (its goal's figure): one call's latency is mostly the two processes waking
 * up (~0.1 ms of ~0.13 ms on this 2-core VM, measured), and that drifts between rounds by more
 * than the goal's margin, so its median needs more rounds to hold still.
 */
const MODES = [
  {
    mode: 'sequential',
    concurrency: 1,
    total: 2_000,
    maxMs: 6_000,
    rounds: 7,
    medianBy: 'p50Ms',
  },
  { mode: '100 concurrent', concurrency: 100, total: 40_000, maxMs: 8_000 },
] as const
/** Rounds of the concurrent mode. */
const ROUNDS = 3
/** The floor variant: a bare node:net echo (bench/net-echo.ts), no framework on either side. */
const ECHO = 'node:net echo (floor)'
/** Sequential calls to a role with no live instance. */
const NO_INSTANCE_CALLS = 2_000
/** The traced variants: name → OTEL_TRACES_SAMPLER(_ARG) of their cache instance. */
const TRACED = {
  'ctx.deps, tracing 1%': {
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.01',
  },
  'ctx.deps, tracing 100%': { OTEL_TRACES_SAMPLER: 'always_on' },
} as const

export async function run(): Promise<{ table: string; summary: SummaryRow[] }> {
  // The framework as production runs it (built.ts): compiled caller, bundled instances.
  const connect = await builtConnect()
  const etcd = await EtcdServer.start()
  const raw = new LoggingChild(
    spawn(process.execPath, ['--import', 'tsx', 'bench/raw-server.ts'], {
      cwd: `${import.meta.dirname}/..`,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
  const echo = new LoggingChild(
    spawn(process.execPath, ['--import', 'tsx', 'bench/net-echo.ts'], {
      cwd: `${import.meta.dirname}/..`,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
  const cacheInstance = startBuiltInstance('cache', {
    ...benchEnv(etcd.endpoint, 'bench-overhead'),
    FRAMEWORK_TTL: '5',
  })
  // The plain tRPC row's own instance: its 8 s of tRPC's fetch adapter at 100 concurrent leave
  // garbage that the next row (ctx.deps, measured right after it) would otherwise pay for.
  const trpcInstance = startBuiltInstance('cache', {
    ...benchEnv(etcd.endpoint, 'bench-overhead-trpc'),
    FRAMEWORK_TTL: '5',
  })
  const sink = new LoggingChild(
    spawn(process.execPath, ['--import', 'tsx', 'bench/otlp-sink.ts'], {
      cwd: `${import.meta.dirname}/..`,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
  const sinkUrl = (await sink.waitForLog('listening')).url as string
  // One cache instance per traced variant, each in a namespace of its own.
  const traced = Object.entries(TRACED).map(([name, sampler], index) => {
    const namespace = `bench-overhead-traced-${index}`
    const instance = startBuiltInstance('cache', {
      ...benchEnv(etcd.endpoint, namespace),
      FRAMEWORK_TTL: '5',
      OTEL_EXPORTER_OTLP_ENDPOINT: sinkUrl,
      OTEL_SERVICE_NAME: namespace,
      ...sampler,
    })
    const client = connect<{ cache: typeof cache }>({
      deps: { cache: true },
      etcdEndpoints: etcd.endpoint,
      namespace,
    })
    return { name, namespace, instance, client }
  })
  // Call tokens on: an instance and a client of their own, sharing the namespace secret.
  const tokenEnv = { FRAMEWORK_SECRET: 'b'.repeat(48) }
  const tokenInstance = startBuiltInstance('cache', {
    ...benchEnv(etcd.endpoint, 'bench-overhead-token'),
    FRAMEWORK_TTL: '5',
    ...tokenEnv,
  })
  const tokenClient = connect<{ cache: typeof cache }>({
    deps: { cache: true },
    etcdEndpoints: etcd.endpoint,
    namespace: 'bench-overhead-token',
    env: { ...process.env, ...tokenEnv },
  })
  const agent = new Agent({ connections: 100, keepAliveTimeout: 10_000 })
  let echoCaller: Awaited<ReturnType<typeof netEchoCaller>> | undefined
  const moleculer: Partial<Record<MoleculerVersion, MoleculerBaseline>> = {}
  const connection = connect<{ cache: typeof cache }>({
    deps: { cache: true },
    etcdEndpoints: etcd.endpoint,
    namespace: 'bench-overhead',
  })
  const requestsOnly = connect<{ cache: typeof cache }>({
    deps: { cache: true },
    etcdEndpoints: etcd.endpoint,
    namespace: 'bench-overhead',
    transport: { stream: false },
  })
  try {
    for (const version of MOLECULER_VERSIONS) moleculer[version] = await startMoleculer({ version })
    const rawUrl = (await raw.waitForLog('listening')).url as string
    echoCaller = await netEchoCaller((await echo.waitForLog('listening')).port as number)
    await cacheInstance.waitForLog('registered in etcd')
    const { url: trpcUrl } = await trpcInstance.listening()
    for (const { instance } of traced) await instance.waitForLog('registered in etcd')
    await tokenInstance.waitForLog('registered in etcd')
    const trpc = createTRPCClient<(typeof cache)['router']>({
      links: [httpLink({ url: `${trpcUrl}/trpc` })],
    })
    await trpc.set.mutate({ key: 'k', value: 'v' })
    await connection.deps.cache.set({ key: 'k', value: 'v' })
    await checkSamePayload(connection.deps.cache.get({ key: 'k' }), moleculer)
    const input = encodeURIComponent(JSON.stringify({ key: 'k' }))
    const variants: Record<string, () => Promise<unknown>> = {
      raw: async () => {
        const response = await request(`${rawUrl}/trpc/get?input=${input}`, { dispatcher: agent })
        return response.body.json()
      },
      [ECHO]: echoCaller.call,
      trpc: () => trpc.get.query({ key: 'k' }),
      'ctx.deps': () => connection.deps.cache.get({ key: 'k' }),
      'ctx.deps (requests)': () => requestsOnly.deps.cache.get({ key: 'k' }),
      'ctx.deps, token auth': () => tokenClient.deps.cache.get({ key: 'k' }),
      ...Object.fromEntries(
        Object.entries(moleculer).map(([version, baseline]) => [
          `moleculer ${version}`,
          baseline.call,
        ]),
      ),
      ...Object.fromEntries(
        traced.map(({ name, client }) => [name, () => client.deps.cache.get({ key: 'k' })]),
      ),
    }
    // Every path warmed up first (connections, JIT), then interleaved rounds.
    const results = await measureInterleaved(variants, MODES, {
      rounds: ROUNDS,
      warmup: { total: 500, concurrency: 8 },
    })
    // The traced instances flush their spans on SIGTERM; the receiver counts what arrived.
    for (const { instance } of traced) await instance.kill('SIGTERM')
    const exported = (await (await request(`${sinkUrl}/count`)).body.json()) as Record<
      string,
      number
    >
    // Calls each traced instance served, from its `stopped` line (served calls per procedure).
    const served = await Promise.all(
      traced.map(async ({ name, namespace, instance }) => {
        const line = await instance.waitForLog('stopped', 5_000)
        const calls = Object.values((line.served ?? {}) as Record<string, number>).reduce(
          (sum, n) => sum + n,
          0,
        )
        return `${name}: ${exported[namespace] ?? 0} spans of ${calls} calls`
      }),
    )
    const find = (name: string, mode: string) =>
      results.find((result) => result.name === name && result.mode === mode)!
    const rows = results.map((result) => {
      const ratio = (baseline: string) =>
        (result.callsPerSecond / find(baseline, result.mode).callsPerSecond).toFixed(2)
      return [
        result.name,
        result.mode,
        result.callsPerSecond,
        result.p50Ms,
        result.p99Ms,
        result.failed,
        ratio('raw'),
        ratio('trpc'),
        ratio('moleculer 0.14'),
        ratio('moleculer 0.15'),
      ]
    })
    const table = markdownTable(
      [...MEASUREMENT_COLUMNS, '× raw', '× trpc', '× moleculer', '× moleculer 0.15'],
      rows,
    )
    const [sequential, concurrent] = MODES.map(({ mode }) => ({
      deps: find('ctx.deps', mode),
      plain: find('trpc', mode),
      moleculer14: find('moleculer 0.14', mode),
      moleculer15: find('moleculer 0.15', mode),
      raw: find('raw', mode),
      traced1: find('ctx.deps, tracing 1%', mode),
      traced100: find('ctx.deps, tracing 100%', mode),
      tokens: find('ctx.deps, token auth', mode),
      echo: find(ECHO, mode),
    }))
    const met = (ok: boolean) => (ok ? 'met' : 'missed')
    const c = concurrent!
    const q = sequential!
    // Against each release: [ratio 0.14, ratio 0.15]; a goal is met only if met against both.
    const callsRatios = [c.moleculer14, c.moleculer15].map(
      (m) => c.deps.callsPerSecond / m.callsPerSecond,
    )
    const p50Ratios = [q.moleculer14, q.moleculer15].map((m) => q.deps.p50Ms / m.p50Ms)
    /** A sequential p50 above the echo's (ms). */
    const above = (m: Measurement) => (m.p50Ms - q.echo.p50Ms).toFixed(3)
    const both = (ratios: number[], digits: number) =>
      `${ratios[0]!.toFixed(digits)}× Moleculer 0.14, ${ratios[1]!.toFixed(digits)}× 0.15`
    const summary: SummaryRow[] = [
      {
        benchmark: 'call-overhead',
        figure: '100 concurrent, calls/s',
        framework: `ctx.deps ${c.deps.callsPerSecond}`,
        baseline: `Moleculer 0.14 ${c.moleculer14.callsPerSecond}, 0.15 ${c.moleculer15.callsPerSecond}; raw ${c.raw.callsPerSecond}; plain tRPC ${c.plain.callsPerSecond}`,
        ratio: `${both(callsRatios, 2)}; ${(c.deps.callsPerSecond / c.raw.callsPerSecond).toFixed(2)}× raw; ${(c.deps.callsPerSecond / c.plain.callsPerSecond).toFixed(1)}× tRPC`,
        goal: `≥ ${GOAL_CALLS_RATIO}× Moleculer 0.14 and 0.15: ${met(callsRatios.every((r) => r >= GOAL_CALLS_RATIO))}`,
      },
      {
        benchmark: 'call-overhead',
        figure: 'sequential, p50 latency',
        framework: `ctx.deps ${q.deps.p50Ms} ms (${q.deps.callsPerSecond}/s)`,
        baseline: `Moleculer 0.14 ${q.moleculer14.p50Ms} ms (${q.moleculer14.callsPerSecond}/s), 0.15 ${q.moleculer15.p50Ms} ms (${q.moleculer15.callsPerSecond}/s); raw ${q.raw.p50Ms} ms`,
        ratio: both(p50Ratios, 2),
        goal: `p50 ≤ ${GOAL_P50_RATIO}× Moleculer 0.14 and 0.15: ${met(p50Ratios.every((r) => r <= GOAL_P50_RATIO))}`,
      },
      {
        benchmark: 'call-overhead',
        figure: 'sequential p50 above the floor (a bare node:net echo: two processes waking up)',
        framework: `ctx.deps +${above(q.deps)} ms`,
        baseline: `Moleculer 0.14 +${above(q.moleculer14)} ms, 0.15 +${above(q.moleculer15)} ms; floor ${q.echo.p50Ms} ms`,
        ratio: [q.moleculer14, q.moleculer15]
          .map((m) => `${(Number(above(q.deps)) / Number(above(m))).toFixed(2)}×`)
          .join(', '),
        goal: 'no goal (where the p50 goes)',
      },
    ]
    const fewer = (traced: Measurement) => 1 - traced.callsPerSecond / c.deps.callsPerSecond
    summary.push(
      {
        benchmark: 'call-overhead',
        figure: '100 concurrent, calls/s with tracing at 1% sampling',
        framework: `${c.traced1.callsPerSecond}`,
        baseline: `ctx.deps, no tracing ${c.deps.callsPerSecond}`,
        ratio: `${(c.traced1.callsPerSecond / c.deps.callsPerSecond).toFixed(2)}×`,
        goal: `≤ 5% fewer: ${met(fewer(c.traced1) <= 0.05)}`,
      },
      {
        benchmark: 'call-overhead',
        figure: '100 concurrent, calls/s with tracing at 100% sampling',
        framework: `${c.traced100.callsPerSecond}`,
        baseline: `ctx.deps, no tracing ${c.deps.callsPerSecond}`,
        ratio: `${(c.traced100.callsPerSecond / c.deps.callsPerSecond).toFixed(2)}×`,
        goal: `≤ 20% fewer: ${met(fewer(c.traced100) <= 0.2)}`,
      },
    )
    summary.push({
      benchmark: 'call-overhead',
      figure: '100 concurrent, calls/s with call tokens on (FRAMEWORK_SECRET)',
      framework: `${c.tokens.callsPerSecond}`,
      baseline: `ctx.deps, tokens off ${c.deps.callsPerSecond}`,
      ratio: `${(c.tokens.callsPerSecond / c.deps.callsPerSecond).toFixed(2)}×`,
      goal: `≤ 10% fewer: ${met(fewer(c.tokens) <= 0.1)}`,
    })
    const noInstance = await measureNoInstance(etcd.endpoint)
    // Where the service side's CPU goes, both sides (after the measured rounds: no interference).
    const profile = await profileServices(etcd.endpoint)
    summary.push({
      benchmark: 'call-overhead',
      figure: 'no live instance → SERVICE_UNAVAILABLE, p99 (p50)',
      framework: `${noInstance.p99Ms} ms (${noInstance.p50Ms})`,
      baseline: '–',
      ratio: '–',
      goal: `fails at once, never waits for the deadline: ${noInstance.maxMs < 100 ? 'met' : 'missed'} (max ${noInstance.maxMs} ms)`,
    })
    writeResult('call-overhead', {
      rounds: Object.fromEntries(
        MODES.map((mode) => [mode.mode, 'rounds' in mode ? mode.rounds : ROUNDS]),
      ),
      results,
      noInstance,
      exported,
      moleculer: Object.fromEntries(
        Object.entries(moleculer).map(([version, baseline]) => [version, baseline.installed]),
      ),
      profile: { framework: profile.framework, moleculer: profile.moleculer, runs: profile.runs },
      summary,
    })
    const exportedLine =
      `spans received from the traced instances, warm-up included: ${served.join('; ')} ` +
      "(the SDK's batch processor drops spans beyond 2048 waiting: OTEL_BSP_MAX_QUEUE_SIZE)"
    const noInstanceLine =
      `no live instance of the role: ${noInstance.calls} sequential calls failed with ` +
      `SERVICE_UNAVAILABLE in p50 ${noInstance.p50Ms} ms, p99 ${noInstance.p99Ms} ms, max ` +
      `${noInstance.maxMs} ms (${noInstance.otherFailures} failed otherwise)`
    return {
      table: `${table}\n\n${noInstanceLine}\n\n${exportedLine}\n\n${profile.table}`,
      summary,
    }
  } finally {
    await connection.close()
    await requestsOnly.close()
    await tokenClient.close()
    await tokenInstance.kill('SIGTERM')
    await agent.close()
    for (const baseline of Object.values(moleculer)) await baseline.close()
    await cacheInstance.kill('SIGTERM')
    await trpcInstance.kill('SIGTERM')
    for (const { instance, client } of traced) {
      await client.close()
      await instance.kill('SIGTERM')
    }
    await sink.kill('SIGTERM')
    await raw.kill('SIGTERM')
    echoCaller?.close()
    await echo.kill('SIGTERM')
    await etcd.dispose()
  }
}

/**
 * Throws unless each Moleculer baseline answers what ctx.deps answers (same fields, same value
 * and hit; `instance` names each side's own node), so both rows move the same payload.
 */
async function checkSamePayload(
  framework: Promise<unknown>,
  moleculer: Partial<Record<MoleculerVersion, MoleculerBaseline>>,
): Promise<void> {
  const expected = await framework
  const comparable = (answer: unknown) => ({
    ...(answer as object),
    instance: typeof (answer as { instance?: unknown }).instance,
  })
  for (const [version, baseline] of Object.entries(moleculer)) {
    const answer = await baseline.call()
    if (!isDeepStrictEqual(comparable(answer), comparable(expected))) {
      throw new Error(
        `Moleculer ${version} answers ${JSON.stringify(answer)} where ctx.deps answers ` +
          `${JSON.stringify(expected)}: the rows would not compare the same payload; fix bench/moleculer-node.ts`,
      )
    }
  }
}

/**
 * Sequential calls through `connect()` to a role listed with no instance (a namespace nobody
 * registers in): each must fail with SERVICE_UNAVAILABLE; latency per call.
 */
async function measureNoInstance(
  etcdEndpoint: string,
): Promise<Measurement & { otherFailures: number }> {
  const connect = await builtConnect()
  const empty = connect<{ cache: typeof cache }>({
    deps: { cache: true },
    etcdEndpoints: etcdEndpoint,
    namespace: 'bench-overhead-empty',
  })
  let otherFailures = 0
  const call = async () => {
    try {
      await empty.deps.cache.get({ key: 'k' })
      otherFailures++
    } catch (err) {
      if ((err as { code?: string }).code !== 'SERVICE_UNAVAILABLE') otherFailures++
      throw err
    }
  }
  try {
    // The first call waits for the role's first listing: not part of the figure.
    await call().catch(() => undefined)
    otherFailures = 0
    const measured = await measure('no live instance', 'sequential', call, {
      total: NO_INSTANCE_CALLS,
      concurrency: 1,
      maxMs: 10_000,
    })
    return { ...measured, otherFailures }
  } finally {
    await empty.close()
  }
}
