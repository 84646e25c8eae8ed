import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { readAppInfo } from '../runtime/app.js'
import { NAMESPACE_PATTERN, parseEtcdEndpoints } from '../runtime/config.js'
import { loadServiceDefinition } from '../runtime/service-module.js'
import { ROLE_PATTERN } from '../service/role.js'
import { EtcdServer } from './local-etcd.js'

const BIN = join(import.meta.dirname, 'bin.js')
const COLORS = [36, 33, 35, 32, 34, 91, 96, 93]
const LEVELS: Record<number, string> = {
  20: 'debug',
  30: 'info',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
}
const STOP_TIMEOUT_MS = 15_000

export interface DevOptions {
  appRoot: string
  /** `role=N` overrides of the replicas in each service definition. */
  replicas: Record<string, number>
  env: NodeJS.ProcessEnv
  /** Where output goes; colors only when it is a TTY. */
  out: NodeJS.WriteStream
}

/** Roles under services/: each folder with an index.ts whose name is a valid role. */
export function listServiceRoles(appRoot: string): string[] {
  const dir = join(appRoot, 'services')
  if (!existsSync(dir)) return []
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(dir, entry.name, 'index.ts')))
    .map((entry) => entry.name)
    .filter((name) => ROLE_PATTERN.test(name))
    .sort()
}

/** Parses `--replicas cache=3,api=2` (or repeated flags). */
export function parseReplicas(values: string[]): Record<string, number> {
  const replicas: Record<string, number> = {}
  for (const item of values.flatMap((value) => value.split(','))) {
    const match = /^([a-z][a-z0-9-]{0,62})=(\d{1,3})$/.exec(item.trim())
    if (!match || Number(match[2]) < 1) {
      throw new Error(
        `--replicas ${JSON.stringify(item)} is invalid: use role=N with N >= 1, e.g. --replicas cache=3`,
      )
    }
    replicas[match[1]!] = Number(match[2])
  }
  return replicas
}

interface Child {
  name: string
  role: string
  process: ChildProcess
  url?: string
  registered: boolean
}

/**
 * `framework dev` as local processes: an etcd (ETCD_ENDPOINTS if set, else one started from the
 * etcd binary), then every service × its replicas via `framework start`, one colored prefixed
 * stream per instance, a readiness table once all are registered. Ctrl-C stops everything
 * gracefully (SIGTERM: leases revoked), then etcd.
 */
export async function devLocal(options: DevOptions): Promise<number> {
  const { appRoot, env, out } = options
  const color = out.isTTY === true
  const paint = (code: number, text: string) => (color ? `\u001b[${code}m${text}\u001b[0m` : text)
  const say = (line: string) => out.write(`${paint(1, 'framework')} ${line}\n`)

  const roles = listServiceRoles(appRoot)
  if (roles.length === 0)
    throw new Error(
      `no services in ${join(appRoot, 'services')}; create one: framework generate service <role>`,
    )
  for (const role of Object.keys(options.replicas)) {
    if (!roles.includes(role))
      throw new Error(`--replicas names '${role}', which is not in services/ (${roles.join(', ')})`)
  }
  const plan: { role: string; replicas: number }[] = []
  for (const role of roles) {
    const definition = await loadServiceDefinition(appRoot, role)
    plan.push({ role, replicas: options.replicas[role] ?? definition.replicas })
  }
  const namespace = env.FRAMEWORK_NAMESPACE || readAppInfo(appRoot).namespace
  if (!NAMESPACE_PATTERN.test(namespace))
    throw new Error(`namespace '${namespace}' is invalid; set FRAMEWORK_NAMESPACE`)

  let etcd: EtcdServer | undefined
  let endpoints: string
  if (env.ETCD_ENDPOINTS) {
    endpoints = parseEtcdEndpoints(env.ETCD_ENDPOINTS).join(',')
    say(`using etcd at ${endpoints} (ETCD_ENDPOINTS)`)
  } else {
    say('starting etcd (temp data dir, free port)…')
    etcd = await EtcdServer.start()
    endpoints = etcd.endpoint
    say(`etcd ready at ${endpoints}`)
  }

  const children: Child[] = []
  let stopping = false
  let resolveAllDone: (code: number) => void = () => undefined
  const allDone = new Promise<number>((resolve) => {
    resolveAllDone = resolve
  })
  const width = Math.max(...plan.map(({ role, replicas }) => `${role}#${replicas}`.length))
  let colorIndex = 0
  const printSummary = () => {
    const rows = plan.map(({ role }) => {
      const mine = children.filter((child) => child.role === role)
      return `  ${role.padEnd(width)}  ${mine.length} instance(s)  ${mine.map((child) => child.url).join('  ')}`
    })
    say(
      `all ${children.length} instances registered (namespace '${namespace}'):\n${rows.join('\n')}`,
    )
    const api = children.find((child) => child.role === 'api')
    if (api) {
      say(`try: curl '${api.url}/trpc/get?input=${encodeURIComponent('{"key":"hello"}')}'`)
    }
    say('Ctrl-C stops everything')
  }

  for (const { role, replicas } of plan) {
    const code = COLORS[colorIndex++ % COLORS.length]!
    for (let n = 1; n <= replicas; n++) {
      const name = `${role}#${n}`
      const child = spawn(process.execPath, [BIN, 'start', role], {
        cwd: appRoot,
        env: {
          ...env,
          ETCD_ENDPOINTS: endpoints,
          FRAMEWORK_NAMESPACE: namespace,
          HOST: env.HOST || '127.0.0.1',
          ADVERTISE_HOST: env.ADVERTISE_HOST || '127.0.0.1',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      const entry: Child = { name, role, process: child, registered: false }
      children.push(entry)
      const prefix = paint(code, `${name.padEnd(width)} |`)
      const onLine = (text: string) => {
        let line: { msg?: string; level?: number; url?: string; [key: string]: unknown } | undefined
        try {
          line = JSON.parse(text)
        } catch {}
        if (!line || typeof line.msg !== 'string') {
          out.write(`${prefix} ${text}\n`)
          return
        }
        if (line.msg === 'listening') entry.url = line.url
        const extras = ['url', 'reason', 'err', 'key']
          .filter((field) => line[field] !== undefined)
          .map(
            (field) =>
              `${field}=${typeof line[field] === 'string' ? line[field] : JSON.stringify(line[field])}`,
          )
        const level = LEVELS[line.level ?? 30] ?? 'info'
        out.write(
          `${prefix} ${level === 'info' ? '' : `${level} `}${line.msg}${extras.length ? ` ${extras.join(' ')}` : ''}\n`,
        )
        if (line.msg === 'registered in etcd' && !entry.registered) {
          entry.registered = true
          if (
            children.length === plan.reduce((sum, p) => sum + p.replicas, 0) &&
            children.every((c) => c.registered)
          ) {
            printSummary()
          }
        }
      }
      if (child.stdout) createInterface({ input: child.stdout }).on('line', onLine)
      if (child.stderr)
        createInterface({ input: child.stderr }).on('line', (text) =>
          out.write(`${prefix} ${text}\n`),
        )
      child.on('exit', (exitCode, signal) => {
        if (!stopping) say(`${name} exited (${signal ?? `code ${exitCode}`}); stop with Ctrl-C`)
        if (children.every((c) => c.process.exitCode !== null || c.process.signalCode !== null)) {
          resolveAllDone(0)
        }
      })
    }
  }

  const stop = async (signal: string) => {
    if (stopping) return
    stopping = true
    say(`${signal}: stopping ${children.length} instances (leases revoked)…`)
    for (const child of children) {
      if (child.process.exitCode === null && child.process.signalCode === null)
        child.process.kill('SIGTERM')
    }
    const timer = setTimeout(() => {
      for (const child of children) {
        if (child.process.exitCode === null && child.process.signalCode === null)
          child.process.kill('SIGKILL')
      }
    }, STOP_TIMEOUT_MS)
    await allDone
    clearTimeout(timer)
    if (etcd) await etcd.dispose()
    say('stopped')
  }
  const finished = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => void stop(signal).then(() => resolve(0))
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
  })
  return finished
}
