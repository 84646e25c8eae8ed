/**
 * call-overhead: what discovery costs per call. Same payload (cache.get of a hit), same loopback:
 *   raw      — node:http server + undici.request (the floor)
 *   trpc     — a plain @trpc/client httpLink at the cache instance's fixed URL
 *   ctx.deps — the framework's client through etcd discovery to the same instance
 * Sequential and 64 concurrent, three interleaved rounds each, median by calls/s.
 */
import { spawn } from 'node:child_process'
import { createTRPCClient, httpLink } from '@trpc/client'
import { Agent, request } from 'undici'
import { EtcdServer } from '../framework/cli/local-etcd.js'
import { connect } from '../framework/index.js'
import type cache from '../services/cache/index.js'
import { SpawnedInstance, spawnInstance, testEnv } from '../test/support/instance.js'
import { type Measurement, markdownTable, measure, median, writeResult } from './harness.js'

const MODES = [
  { mode: 'sequential', concurrency: 1, total: 3_000, maxMs: 6_000 },
  { mode: '64 concurrent', concurrency: 64, total: 12_000, maxMs: 10_000 },
] as const
const ROUNDS = 3

export async function run(): Promise<{ table: string; summary: string[] }> {
  const etcd = await EtcdServer.start()
  const raw = new SpawnedInstance(
    spawn(process.execPath, ['--import', 'tsx', 'bench/raw-server.ts'], {
      cwd: `${import.meta.dirname}/..`,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
  const cacheInstance = spawnInstance('cache', {
    env: { ...testEnv(etcd.endpoint, 'bench-overhead'), FRAMEWORK_TTL: '5' },
  })
  const agent = new Agent({ connections: 64, keepAliveTimeout: 10_000 })
  const connection = connect<{ cache: typeof cache }>({
    deps: { cache: true },
    etcdEndpoints: etcd.endpoint,
    namespace: 'bench-overhead',
  })
  try {
    const rawUrl = (await raw.waitForLog('listening')).url as string
    const { url: cacheUrl } = await cacheInstance.listening()
    await cacheInstance.waitForLog('registered in etcd')
    const trpc = createTRPCClient<(typeof cache)['router']>({
      links: [httpLink({ url: `${cacheUrl}/trpc` })],
    })
    await trpc.set.mutate({ key: 'k', value: 'v' })
    const input = encodeURIComponent(JSON.stringify({ key: 'k' }))
    const variants: Record<string, () => Promise<unknown>> = {
      raw: async () => {
        const response = await request(`${rawUrl}/trpc/get?input=${input}`, { dispatcher: agent })
        return response.body.json()
      },
      trpc: () => trpc.get.query({ key: 'k' }),
      'ctx.deps': () => connection.deps.cache.get({ key: 'k' }),
    }
    // Warm up every path (connections, JIT).
    for (const call of Object.values(variants)) {
      await measure('warmup', 'warmup', call, { total: 500, concurrency: 8, maxMs: 3_000 })
    }
    const results: Measurement[] = []
    for (const { mode, ...options } of MODES) {
      const rounds: Record<string, Measurement[]> = {}
      for (let round = 0; round < ROUNDS; round++) {
        for (const [name, call] of Object.entries(variants)) {
          const measured = await measure(name, mode, call, options)
          rounds[name] = [...(rounds[name] ?? []), measured]
        }
      }
      for (const name of Object.keys(variants)) results.push(median(rounds[name]!))
    }
    const find = (name: string, mode: string) =>
      results.find((result) => result.name === name && result.mode === mode)!
    const rows = results.map((result) => {
      const rawResult = find('raw', result.mode)
      const trpcResult = find('trpc', result.mode)
      return [
        result.name,
        result.mode,
        result.callsPerSecond,
        result.p50Ms,
        result.p99Ms,
        result.failed,
        (result.callsPerSecond / rawResult.callsPerSecond).toFixed(2),
        (result.callsPerSecond / trpcResult.callsPerSecond).toFixed(2),
      ]
    })
    const table = markdownTable(
      ['path', 'mode', 'calls/s', 'p50 ms', 'p99 ms', 'failed', '× raw', '× trpc'],
      rows,
    )
    const summary = MODES.map(({ mode }) => {
      const deps = find('ctx.deps', mode)
      const plain = find('trpc', mode)
      const cost = 1 - deps.callsPerSecond / plain.callsPerSecond
      return `call-overhead ${mode}: ctx.deps ${deps.callsPerSecond}/s vs plain tRPC ${plain.callsPerSecond}/s → discovery costs ${(cost * 100).toFixed(1)}% (goal ≤ 10%: ${cost <= 0.1 ? 'met' : 'missed'})`
    })
    writeResult('call-overhead', { rounds: ROUNDS, results, summary })
    return { table, summary }
  } finally {
    await connection.close()
    await agent.close()
    await cacheInstance.kill('SIGTERM')
    await raw.kill('SIGTERM')
    await etcd.dispose()
  }
}
