/**
 * gateway: what the edge costs. The example app's `api.get` (a read through `cache`, input
 * validated at each hop) called by 100 concurrent callers (and one, for the latency floor):
 *   gateway        — undici → `framework gateway` (GET /trpc/api.get) → api over the RPC stream
 *   ctx.deps       — the framework's client straight to api (what a service's ctx.deps does)
 *   nginx → /trpc  — undici → Debian's nginx (1 worker, upstream keepalive) → api's /trpc
 *   /trpc direct   — undici → api's /trpc (tRPC's express adapter), no proxy: nginx's floor
 * Three interleaved rounds each, median by calls/s. Then one more gateway run under
 * `node --cpu-prof` for where its time goes.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { freePort } from '../framework/cli/free-port.js'
import { EtcdServer } from '../framework/cli/local-etcd.js'
import { connect } from '../framework/index.js'
import type api from '../services/api/index.js'
import { profileBreakdown, readProfile } from './cpu-profile.js'
import {
  MEASUREMENT_COLUMNS,
  markdownTable,
  measure,
  measureInterleaved,
  type SummaryRow,
  writeResult,
} from './harness.js'
import { benchEnv, CLI, LoggingChild, startInstance } from './instance.js'
import { ensureNginx, startNginx } from './nginx.js'
import { REPO_ROOT } from './support.js'

const NAMESPACE = 'bench-gateway'
const MODES = [
  { mode: 'sequential', concurrency: 1, total: 3_000, maxMs: 4_000 },
  { mode: '100 concurrent', concurrency: 100, total: 30_000, maxMs: 6_000 },
] as const
const ROUNDS = 3
const PROFILE_MS = 6_000

function spawnGateway(env: Record<string, string>, nodeArgs: string[] = []): LoggingChild {
  return new LoggingChild(
    spawn(process.execPath, [...nodeArgs, CLI, 'gateway'], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env, GATEWAY_PORT: '0', HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
}

/** The gateway's URL, from its `listening` line. */
async function listeningUrl(gateway: LoggingChild): Promise<string> {
  return (await gateway.waitForLog('listening', 60_000)).url as string
}

export async function run(): Promise<{ table: string; summary: SummaryRow[] }> {
  ensureNginx()
  const etcd = await EtcdServer.start()
  const env = { ...benchEnv(etcd.endpoint, NAMESPACE), FRAMEWORK_TTL: '5' }
  const cache = startInstance('cache', env)
  const apiInstance = startInstance('api', env)
  const work = mkdtempSync(join(tmpdir(), 'bench-gateway-'))
  const agent = new Agent({ connections: 100, keepAliveTimeout: 10_000 })
  let gateway: LoggingChild | undefined
  let nginx: ReturnType<typeof spawn> | undefined
  const connection = connect<{ api: typeof api }>({
    deps: { api: true },
    etcdEndpoints: etcd.endpoint,
    namespace: NAMESPACE,
  })
  try {
    await cache.waitForLog('registered in etcd', 60_000)
    const { url: apiUrl } = await apiInstance.listening()
    await apiInstance.waitForLog('registered in etcd', 60_000)
    gateway = spawnGateway(env)
    const gatewayUrl = await listeningUrl(gateway)
    const nginxPort = await freePort()
    nginx = await startNginx(join(work, 'nginx'), nginxPort, new URL(apiUrl).host)
    await connection.deps.api.put({ key: 'k', value: 'v' })

    const input = encodeURIComponent(JSON.stringify({ key: 'k' }))
    const get = (url: string) => async () => {
      const response = await request(url, { dispatcher: agent })
      const body = (await response.body.json()) as { result?: unknown }
      if (response.statusCode !== 200 || !body.result)
        throw new Error(`HTTP ${response.statusCode}`)
      return body
    }
    const variants: Record<string, () => Promise<unknown>> = {
      gateway: get(`${gatewayUrl}/trpc/api.get?input=${input}`),
      'ctx.deps': () => connection.deps.api.get({ key: 'k' }),
      'nginx → /trpc': get(`http://127.0.0.1:${nginxPort}/trpc/get?input=${input}`),
      '/trpc direct': get(`${apiUrl}/trpc/get?input=${input}`),
    }
    const results = await measureInterleaved(variants, MODES, {
      rounds: ROUNDS,
      warmup: { total: 1_000, concurrency: 16 },
    })

    // One more gateway run, profiled: the same load on a gateway started with --cpu-prof.
    await gateway.kill('SIGTERM')
    const profileDir = join(work, 'profile')
    gateway = spawnGateway(env, ['--cpu-prof', `--cpu-prof-dir=${profileDir}`])
    const profiledUrl = await listeningUrl(gateway)
    const profiled = get(`${profiledUrl}/trpc/api.get?input=${input}`)
    await measure('warmup', 'warmup', profiled, { total: 1_000, concurrency: 16, maxMs: 3_000 })
    const profiledRun = await measure('gateway (profiled)', '100 concurrent', profiled, {
      total: 1_000_000,
      concurrency: 100,
      maxMs: PROFILE_MS,
    })
    await gateway.kill('SIGTERM')
    const breakdown = profileBreakdown(readProfile(profileDir))

    const find = (name: string, mode: string) =>
      results.find((result) => result.name === name && result.mode === mode)!
    const table = markdownTable(
      [...MEASUREMENT_COLUMNS, '× nginx → /trpc', 'p50 − ctx.deps ms'],
      results.map((result) => [
        result.name,
        result.mode,
        result.callsPerSecond,
        result.p50Ms,
        result.p99Ms,
        result.failed,
        (result.callsPerSecond / find('nginx → /trpc', result.mode).callsPerSecond).toFixed(2),
        (result.p50Ms - find('ctx.deps', result.mode).p50Ms).toFixed(3),
      ]),
    )
    const profileTable = markdownTable(
      ['gateway CPU (self time, --cpu-prof, 100 concurrent)', 'ms', 'share of busy time'],
      breakdown.map((row) => [
        row.category,
        row.ms,
        Number.isNaN(row.busyShare) ? '—' : `${(row.busyShare * 100).toFixed(1)}%`,
      ]),
    )
    const c = {
      gateway: find('gateway', '100 concurrent'),
      deps: find('ctx.deps', '100 concurrent'),
      nginx: find('nginx → /trpc', '100 concurrent'),
      direct: find('/trpc direct', '100 concurrent'),
    }
    const q = {
      gateway: find('gateway', 'sequential'),
      deps: find('ctx.deps', 'sequential'),
      nginx: find('nginx → /trpc', 'sequential'),
    }
    const met = (ok: boolean) => (ok ? 'met' : 'missed')
    const overheadMs = c.gateway.p50Ms - c.deps.p50Ms
    const summary: SummaryRow[] = [
      {
        benchmark: 'gateway',
        figure: '100 concurrent, calls/s',
        framework: `gateway ${c.gateway.callsPerSecond}`,
        baseline: `nginx → /trpc ${c.nginx.callsPerSecond}; /trpc direct ${c.direct.callsPerSecond}; ctx.deps ${c.deps.callsPerSecond}`,
        ratio: `${(c.gateway.callsPerSecond / c.nginx.callsPerSecond).toFixed(2)}× nginx; ${(c.gateway.callsPerSecond / c.deps.callsPerSecond).toFixed(2)}× ctx.deps`,
        goal: `≥ 2× nginx: ${met(c.gateway.callsPerSecond >= 2 * c.nginx.callsPerSecond)}`,
      },
      {
        benchmark: 'gateway',
        figure: '100 concurrent, p50 over direct ctx.deps',
        framework: `gateway ${c.gateway.p50Ms} ms`,
        baseline: `ctx.deps ${c.deps.p50Ms} ms`,
        ratio: `+${overheadMs.toFixed(3)} ms`,
        goal: `≤ +0.5 ms: ${met(overheadMs <= 0.5)}`,
      },
      {
        benchmark: 'gateway',
        figure: 'sequential, p50 over direct ctx.deps',
        framework: `gateway ${q.gateway.p50Ms} ms`,
        baseline: `ctx.deps ${q.deps.p50Ms} ms; nginx → /trpc ${q.nginx.p50Ms} ms`,
        ratio: `+${(q.gateway.p50Ms - q.deps.p50Ms).toFixed(3)} ms`,
        goal: 'no goal (one caller: the hop itself)',
      },
    ]
    writeResult('gateway', {
      rounds: ROUNDS,
      results,
      profile: { run: profiledRun, breakdown },
      summary,
    })
    return { table: `${table}\n\n${profileTable}`, summary }
  } finally {
    await connection.close()
    await agent.close()
    await gateway?.kill('SIGTERM')
    if (nginx && nginx.exitCode === null) {
      nginx.kill('SIGQUIT')
      await new Promise((resolve) => nginx?.once('exit', resolve))
    }
    await apiInstance.kill('SIGTERM')
    await cache.kill('SIGTERM')
    await etcd.dispose()
    rmSync(work, { recursive: true, force: true })
  }
}
