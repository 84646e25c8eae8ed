import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { REPO_ROOT } from './support.js'

/** This repo's CLI (TypeScript, through tsx). */
export const CLI = resolve(REPO_ROOT, 'framework/cli/bin.js')

/** One JSON log line of a child (pino's shape). */
export type LogLine = { msg: string; [field: string]: unknown }

/** A child process that logs JSON lines (a `framework start`, a Moleculer node), for benchmarks. */
export class LoggingChild {
  readonly lines: LogLine[] = []
  stderr = ''
  readonly exited: Promise<number | null>
  #waiters: { text: string; resolve: (line: LogLine) => void }[] = []

  /** The child's pid (for process figures such as its RSS). */
  get pid(): number {
    return this.child.pid as number
  }

  constructor(readonly child: ChildProcess) {
    if (child.stdout) {
      createInterface({ input: child.stdout }).on('line', (text) => {
        let line: LogLine
        try {
          line = JSON.parse(text) as LogLine
        } catch {
          this.stderr += `${text}\n`
          return
        }
        if (typeof line.msg !== 'string') line.msg = ''
        this.lines.push(line)
        this.#waiters = this.#waiters.filter((waiter) => {
          if (!line.msg.includes(waiter.text)) return true
          waiter.resolve(line)
          return false
        })
      })
    }
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString()
    })
    this.exited = once(child, 'exit').then(([code]) => code as number | null)
  }

  /** The first log line (past or future) whose `msg` includes `text`. */
  waitForLog(text: string, timeoutMs = 15_000): Promise<LogLine> {
    const seen = this.lines.find((line) => line.msg.includes(text))
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no log line "${text}" within ${timeoutMs} ms\n${this.stderr}`)),
        timeoutMs,
      )
      this.#waiters.push({
        text,
        resolve: (line) => {
          clearTimeout(timer)
          resolve(line)
        },
      })
    })
  }

  /** `url` and `instance` from the "listening" line. */
  async listening(): Promise<{ url: string; id: string }> {
    const line = await this.waitForLog('listening')
    return { url: line.url as string, id: line.instance as string }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
    return this.exited
  }
}

/** Environment of a benchmarked instance: loopback only, this etcd and namespace, TTL 2 s. */
export function benchEnv(etcdEndpoint: string, namespace: string): Record<string, string> {
  return {
    ETCD_ENDPOINTS: etcdEndpoint,
    FRAMEWORK_NAMESPACE: namespace,
    HOST: '127.0.0.1',
    ADVERTISE_HOST: '127.0.0.1',
    FRAMEWORK_TTL: '2',
  }
}

/**
 * `framework start <role>` of the repo's example app, with `env` on top of this process's and
 * `nodeArgs` (e.g. `--cpu-prof`, which NODE_OPTIONS may not carry) before the CLI.
 */
export function startInstance(
  role: string,
  env: Record<string, string>,
  nodeArgs: readonly string[] = [],
): LoggingChild {
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'start', role], {
    cwd: REPO_ROOT,
    env: { ...process.env, NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  return new LoggingChild(child)
}
