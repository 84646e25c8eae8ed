import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { resolve } from 'node:path'

export const REPO_ROOT = resolve(import.meta.dirname, '../..')
export const CLI = resolve(REPO_ROOT, 'framework/cli/bin.js')

/** One structured log line of an instance. */
export type LogLine = { msg: string; level: number; [field: string]: unknown }

/** A `framework start <role>` child process, with its parsed log lines. */
export class SpawnedInstance {
  readonly lines: LogLine[] = []
  stderr = ''
  readonly exited: Promise<number | null>
  #waiters: { match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }[] = []

  constructor(readonly child: ChildProcess) {
    let buffered = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      let newline = buffered.indexOf('\n')
      while (newline >= 0) {
        const text = buffered.slice(0, newline)
        buffered = buffered.slice(newline + 1)
        newline = buffered.indexOf('\n')
        try {
          this.#push(JSON.parse(text) as LogLine)
        } catch {
          this.stderr += `${text}\n`
        }
      }
    })
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString()
    })
    this.exited = once(child, 'exit').then(([code]) => code as number | null)
  }

  #push(line: LogLine) {
    this.lines.push(line)
    this.#waiters = this.#waiters.filter((waiter) => {
      if (!waiter.match(line)) return true
      waiter.resolve(line)
      return false
    })
  }

  /** Resolves with the first log line (past or future) whose `msg` includes `text`. */
  waitForLog(text: string, timeoutMs = 15_000, after = 0): Promise<LogLine> {
    const match = (line: LogLine) => line.msg.includes(text)
    const seen = this.lines.slice(after).find(match)
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `no log line "${text}" within ${timeoutMs} ms; log:\n${this.lines.map((l) => JSON.stringify(l)).join('\n')}\n${this.stderr}`,
            ),
          ),
        timeoutMs,
      )
      this.#waiters.push({
        match,
        resolve: (line) => {
          clearTimeout(timer)
          resolve(line)
        },
      })
    })
  }

  /** Lines logged with `msg` including `text`. */
  count(text: string): number {
    return this.lines.filter((line) => line.msg.includes(text)).length
  }

  get pid(): number {
    return this.child.pid as number
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

export interface SpawnOptions {
  /** App root holding services/ (default: the repo itself). */
  appRoot?: string
  /** Extra environment; ETCD_ENDPOINTS etc. */
  env?: Record<string, string>
}

/** Environment every spawned test instance gets: loopback only, quiet, test namespace. */
export function testEnv(etcdEndpoint: string, namespace: string): Record<string, string> {
  return {
    ETCD_ENDPOINTS: etcdEndpoint,
    FRAMEWORK_NAMESPACE: namespace,
    HOST: '127.0.0.1',
    ADVERTISE_HOST: '127.0.0.1',
    FRAMEWORK_TTL: '2',
  }
}

export function spawnInstance(role: string, options: SpawnOptions = {}): SpawnedInstance {
  const child = spawn(process.execPath, [CLI, 'start', role], {
    cwd: options.appRoot ?? REPO_ROOT,
    env: { ...process.env, NODE_ENV: 'test', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  return new SpawnedInstance(child)
}

/** Kills every instance still running (for afterEach/afterAll). */
export async function killAll(instances: SpawnedInstance[]): Promise<void> {
  await Promise.all(instances.map((instance) => instance.kill('SIGKILL')))
  instances.length = 0
}

/** Whether a process with this pid exists (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
