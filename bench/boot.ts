/**
 * boot: `framework dev --local --no-watch` with the example app (an etcd from the binary, 3
 * `cache` and 1 `api`, each a process): time from spawning the command until it prints that every
 * instance is registered (= every `/readyz` answers 200). Median of 5, interleaved with the
 * baseline: the same machine work without the framework — start an etcd the same way, then 4
 * processes of a bare `node:http` server loaded through the same tsx loader, until all listen.
 */

import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { loadavg } from 'node:os'
import { createInterface } from 'node:readline'
import { EtcdServer } from '../framework/cli/local-etcd.js'
import { markdownTable, type SummaryRow, writeResult } from './harness.js'
import { benchEnv, startInstance } from './instance.js'
import { BenchChild, fixed, median, now, REPO_ROOT } from './support.js'

const ROUNDS = 5
const CLI = `${REPO_ROOT}/framework/cli/bin.js`
const READY_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_MS = 20_000

interface DevRun {
  etcdReadyMs: number
  allReadyMs: number
  instances: number
  stopMs: number
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0)
    return true
  } catch {
    return false
  }
}

/**
 * Runs `framework dev --local` in its own process group until ready, then Ctrl-C (SIGINT): the
 * example app with this repo's CLI, or `app` with its own CLI and extra arguments.
 */
export async function devOnce(
  app: { cwd: string; cli: string; args: string[] } = { cwd: REPO_ROOT, cli: CLI, args: [] },
): Promise<DevRun> {
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.ETCD_ENDPOINTS
  delete env.FRAMEWORK_NAMESPACE
  const started = now()
  const child: ChildProcess = spawn(
    process.execPath,
    [app.cli, 'dev', '--local', '--no-watch', ...app.args],
    {
      cwd: app.cwd,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  const pid = child.pid as number
  let output = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-10_000)
  })
  const exited = once(child, 'exit')
  try {
    const ready = await new Promise<{ etcdReadyMs: number; allReadyMs: number; instances: number }>(
      (resolve, reject) => {
        let etcdReadyMs = Number.NaN
        const timer = setTimeout(
          () => reject(new Error(`framework dev not ready in ${READY_TIMEOUT_MS} ms:\n${output}`)),
          READY_TIMEOUT_MS,
        )
        child.once('exit', (code) => {
          clearTimeout(timer)
          reject(new Error(`framework dev exited (${code}) before ready:\n${output}`))
        })
        createInterface({ input: child.stdout! }).on('line', (line) => {
          output = `${output}${line}\n`.slice(-10_000)
          if (line.includes('etcd ready at')) etcdReadyMs = now() - started
          const all = /all (\d+) instances registered/.exec(line)
          if (all) {
            clearTimeout(timer)
            resolve({ etcdReadyMs, allReadyMs: now() - started, instances: Number(all[1]) })
          }
        })
      },
    )
    const stopping = now()
    child.kill('SIGINT')
    const stopped = await Promise.race([
      exited.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), STOP_TIMEOUT_MS)),
    ])
    if (!stopped) throw new Error(`framework dev did not stop on SIGINT:\n${output}`)
    return { ...ready, stopMs: now() - stopping }
  } finally {
    // Whatever is left of the group we created (the CLI, its instances, its etcd).
    if (groupAlive(pid)) process.kill(-pid, 'SIGKILL')
  }
}

/** The floor: etcd from the binary, then 4 bare node:http processes through tsx, until listening. */
export async function baselineOnce(): Promise<{ etcdReadyMs: number; allReadyMs: number }> {
  const started = now()
  const etcd = await EtcdServer.start()
  const etcdReadyMs = now() - started
  const servers = Array.from({ length: 4 }, () => new BenchChild('raw-server.ts'))
  try {
    await Promise.all(
      servers.map(
        (server) =>
          new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error('raw server not listening')), 30_000)
            const check = () => {
              if (server.output.includes('listening')) {
                clearTimeout(timer)
                resolve()
              } else setTimeout(check, 5)
            }
            check()
          }),
      ),
    )
    return { etcdReadyMs, allReadyMs: now() - started }
  } finally {
    for (const server of servers) await server.kill('SIGKILL')
    await etcd.dispose()
  }
}

/** Attribution: one `framework start cache` against a running etcd, spawn → listening → registered. */
async function singleOnce(
  endpoint: string,
): Promise<{ listeningMs: number; registeredMs: number }> {
  const started = now()
  const instance = startInstance('cache', benchEnv(endpoint, 'bench-boot'))
  try {
    await instance.listening()
    const listeningMs = now() - started
    await instance.waitForLog('registered in etcd', 30_000)
    return { listeningMs, registeredMs: now() - started }
  } finally {
    await instance.kill('SIGKILL')
  }
}

export async function run(): Promise<{ table: string; summary: SummaryRow[] }> {
  const dev: DevRun[] = []
  const base: { etcdReadyMs: number; allReadyMs: number }[] = []
  const single: { listeningMs: number; registeredMs: number }[] = []
  const etcd = await EtcdServer.start()
  try {
    for (let round = 0; round < ROUNDS; round++) {
      base.push(await baselineOnce())
      single.push(await singleOnce(etcd.endpoint))
      dev.push(await devOnce())
    }
  } finally {
    await etcd.dispose()
  }
  const devReady = median(dev.map((r) => r.allReadyMs))
  const baseReady = median(base.map((r) => r.allReadyMs))
  const rows = [
    [
      'baseline: etcd + 4 bare node:http processes (tsx)',
      fixed(median(base.map((r) => r.etcdReadyMs)), 0),
      fixed(baseReady, 0),
      base.map((r) => fixed(r.allReadyMs, 0)).join(', '),
      '1.00',
      '—',
    ],
    [
      `framework dev --local (${dev[0]?.instances ?? '?'} instances: 3 cache, 1 api)`,
      fixed(median(dev.map((r) => r.etcdReadyMs)), 0),
      fixed(devReady, 0),
      dev.map((r) => fixed(r.allReadyMs, 0)).join(', '),
      fixed(devReady / baseReady),
      fixed(median(dev.map((r) => r.stopMs)), 0),
    ],
    [
      'attribution: one `framework start cache`, etcd already up (spawn → listening / registered)',
      '—',
      `${fixed(median(single.map((r) => r.listeningMs)), 0)} / ${fixed(median(single.map((r) => r.registeredMs)), 0)}`,
      single.map((r) => fixed(r.registeredMs, 0)).join(', '),
      '—',
      '—',
    ],
  ]
  const table = markdownTable(
    [
      'run',
      'etcd ready ms (median)',
      'all ready ms (median)',
      `all ready ms (${ROUNDS} runs)`,
      '× baseline',
      'Ctrl-C → all stopped ms',
    ],
    rows,
  )
  const summary: SummaryRow[] = [
    {
      benchmark: 'boot',
      figure: `framework dev --local, all ready (median of ${ROUNDS})`,
      framework: `${fixed(devReady, 0)} ms`,
      baseline: `etcd + 4 bare node:http processes ${fixed(baseReady, 0)} ms`,
      ratio: `${fixed(devReady / baseReady)}×`,
      goal: 'no goal',
    },
  ]
  writeResult('boot', {
    loadAverage: loadavg(),
    rounds: ROUNDS,
    dev,
    baseline: base,
    singleInstance: single,
    summary,
  })
  return { table, summary }
}
