import { type ChildProcess, spawn } from 'node:child_process'
import { type FSWatcher, watch } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { readAppInfo } from '../runtime/app.js'
import { NAMESPACE_PATTERN, parseEtcdEndpoints } from '../runtime/config.js'
import { loadServiceDefinition } from '../runtime/service-module.js'
import { procedureManifest } from '../service/manifest.js'
import { CliError } from './cli-error.js'
import { EtcdServer } from './local-etcd.js'
import { formatTable, styler } from './output.js'
import { checkReplicaRoles, listServiceRoles } from './service-roles.js'

const BIN = join(import.meta.dirname, 'bin.js')
const COLORS = [36, 33, 35, 32, 34, 91, 96, 93]
const LEVELS: Record<number, string> = { 20: 'debug', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' }
const STOP_TIMEOUT_MS = 15_000
const RESTART_DEBOUNCE_MS = 300

export interface DevOptions {
  appRoot: string
  /** `role=N` overrides of the replicas in each service definition. */
  replicas: Record<string, number>
  env: NodeJS.ProcessEnv
  /** Where output goes; colors only when it is a TTY. */
  out: NodeJS.WriteStream
  /** Restart a role's instances when files under services/<role> change. */
  watchFiles: boolean
}

/** Parses `--replicas cache=3,api=2` (or repeated flags). */
export function parseReplicas(values: string[]): Record<string, number> {
  const replicas: Record<string, number> = {}
  for (const item of values.flatMap((value) => value.split(','))) {
    const match = /^([a-z][a-z0-9-]{0,62})=(\d{1,3})$/.exec(item.trim())
    if (!match || Number(match[2]) < 1) {
      throw new CliError(
        `--replicas ${JSON.stringify(item)} is invalid: use role=N with N >= 1, e.g. --replicas cache=3`,
        2,
      )
    }
    replicas[match[1]!] = Number(match[2])
  }
  return replicas
}

/** What `framework dev` runs: each role with its instance count, from services/ and --replicas. */
export async function devPlan(
  appRoot: string,
  overrides: Record<string, number>,
): Promise<
  { role: string; replicas: number; port: number | undefined; procedures: string[]; deps: number }[]
> {
  const roles = listServiceRoles(appRoot)
  if (roles.length === 0) {
    throw new CliError(
      `no services in ${join(appRoot, 'services')}; create one: framework generate service <role>`,
      2,
    )
  }
  checkReplicaRoles(overrides, roles)
  const plan = []
  for (const role of roles) {
    const definition = await loadServiceDefinition(appRoot, role)
    plan.push({
      role,
      replicas: overrides[role] ?? definition.replicas,
      port: definition.port,
      procedures: Object.keys(procedureManifest(definition.router)),
      deps: Object.keys(definition.deps).length,
    })
  }
  return plan
}

interface Instance {
  name: string
  role: string
  process: ChildProcess
  url?: string
  registered: boolean
}

/**
 * `framework dev` as local processes: an etcd (ETCD_ENDPOINTS if set, else one started from the
 * etcd binary), then every service × its replicas via `framework start`, one colored, prefixed
 * stream per instance, and a readiness table once all are registered. A change under
 * services/<role> restarts that role. Ctrl-C stops everything gracefully (SIGTERM: leases
 * revoked), then etcd; nothing is left running.
 */
export async function devLocal(options: DevOptions): Promise<number> {
  const { appRoot, env, out } = options
  const style = styler(out)
  const say = (line: string) => out.write(`${style.bold('framework')} ${line}\n`)
  const plan = await devPlan(appRoot, options.replicas)
  const namespace = env.FRAMEWORK_NAMESPACE || readAppInfo(appRoot).namespace
  if (!NAMESPACE_PATTERN.test(namespace)) {
    throw new CliError(`namespace '${namespace}' is invalid; set FRAMEWORK_NAMESPACE`, 2)
  }

  let etcd: EtcdServer | undefined
  let endpoints: string
  if (env.ETCD_ENDPOINTS) {
    endpoints = parseEtcdEndpoints(env.ETCD_ENDPOINTS).join(',')
    say(`using etcd at ${endpoints} (ETCD_ENDPOINTS)`)
  } else {
    say('starting etcd (temp data dir, free port)…')
    try {
      etcd = await EtcdServer.start()
    } catch (err) {
      throw new CliError((err as Error).message.split('\n')[0] ?? 'etcd failed to start')
    }
    endpoints = etcd.endpoint
    say(`etcd ready at ${endpoints}`)
  }

  const total = plan.reduce((sum, entry) => sum + entry.replicas, 0)
  const width = Math.max(...plan.map(({ role, replicas }) => `${role}#${replicas}`.length))
  const colorOf = new Map(plan.map(({ role }, i) => [role, COLORS[i % COLORS.length]!]))
  const instances = new Map<string, Instance>()
  let stopping = false
  let summaryShown = false
  let onAllExited: () => void = () => undefined

  const printSummary = () => {
    const rows = plan.map(({ role }) => {
      const mine = [...instances.values()].filter((instance) => instance.role === role)
      return [role, String(mine.length), mine.map((instance) => instance.url).join('  ')]
    })
    say(
      `all ${total} instances registered (namespace '${namespace}', etcd ${endpoints}):\n${formatTable(['role', 'instances', 'urls'], rows)}`,
    )
    const first = [...instances.values()][0]
    if (first)
      say(`try: framework call ${first.role}.<procedure> '<json>'   (framework routes lists them)`)
    say('Ctrl-C stops everything')
  }

  const start = (role: string, n: number, port: number | undefined) => {
    const name = `${role}#${n}`
    const child = spawn(process.execPath, [BIN, 'start', role], {
      cwd: appRoot,
      env: {
        ...env,
        ETCD_ENDPOINTS: endpoints,
        FRAMEWORK_NAMESPACE: namespace,
        HOST: env.HOST || '127.0.0.1',
        ADVERTISE_HOST: env.ADVERTISE_HOST || '127.0.0.1',
        ...(port !== undefined ? { PORT: String(port) } : {}),
        // If dev dies without stopping us (kill -9), the instance notices and stops itself.
        FRAMEWORK_PARENT_PID: String(process.pid),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const instance: Instance = { name, role, process: child, registered: false }
    instances.set(name, instance)
    const prefix = style.color(colorOf.get(role) ?? 0, `${name.padEnd(width)} |`)
    const onLine = (text: string) => {
      let line: { msg?: unknown; level?: number; [key: string]: unknown } | undefined
      try {
        line = JSON.parse(text)
      } catch {}
      if (!line || typeof line.msg !== 'string') {
        out.write(`${prefix} ${text}\n`)
        return
      }
      if (line.msg === 'listening') instance.url = line.url as string
      const extras = ['url', 'reason', 'err', 'key']
        .filter((field) => line[field] !== undefined)
        .map(
          (field) =>
            `${field}=${typeof line[field] === 'string' ? line[field] : JSON.stringify(line[field])}`,
        )
      const level = LEVELS[line.level ?? 30]
      out.write(
        `${prefix} ${level ? `${level} ` : ''}${line.msg}${extras.length ? ` ${style.dim(extras.join(' '))}` : ''}\n`,
      )
      if (line.msg === 'registered in etcd' && !instance.registered) {
        instance.registered = true
        const all = [...instances.values()]
        if (!summaryShown && all.length === total && all.every((i) => i.registered)) {
          summaryShown = true
          printSummary()
        }
      }
    }
    if (child.stdout) createInterface({ input: child.stdout }).on('line', onLine)
    if (child.stderr) {
      createInterface({ input: child.stderr }).on('line', (text) =>
        out.write(`${prefix} ${text}\n`),
      )
    }
    child.on('exit', (code, signal) => {
      if (instances.get(name)?.process === child && !stopping && !restarting.has(role)) {
        say(
          `${name} exited (${signal ?? `code ${code}`}); fix and save a file under services/${role} to restart it`,
        )
      }
      if (
        stopping &&
        [...instances.values()].every(
          (i) => i.process.exitCode !== null || i.process.signalCode !== null,
        )
      ) {
        onAllExited()
      }
    })
  }

  const isRunning = (instance: Instance) =>
    instance.process.exitCode === null && instance.process.signalCode === null
  const restarting = new Set<string>()
  const restart = async (role: string) => {
    if (stopping || restarting.has(role)) return
    restarting.add(role)
    const entry = plan.find((p) => p.role === role)!
    say(`files of ${role} changed: restarting ${entry.replicas} instance(s)`)
    const old = [...instances.values()].filter((instance) => instance.role === role)
    await Promise.all(
      old.map(
        (instance) =>
          new Promise<void>((resolve) => {
            if (!isRunning(instance)) return resolve()
            instance.process.once('exit', () => resolve())
            instance.process.kill('SIGTERM')
          }),
      ),
    )
    restarting.delete(role)
    if (stopping) return
    for (let n = 1; n <= entry.replicas; n++)
      start(role, n, entry.replicas === 1 ? entry.port : undefined)
  }

  for (const { role, replicas, port } of plan) {
    // A fixed port fits one instance per host; replicas take free ports.
    for (let n = 1; n <= replicas; n++) start(role, n, replicas === 1 ? port : undefined)
  }

  const watchers: FSWatcher[] = []
  if (options.watchFiles) {
    for (const { role } of plan) {
      let timer: NodeJS.Timeout | undefined
      try {
        watchers.push(
          watch(join(appRoot, 'services', role), { recursive: true }, () => {
            clearTimeout(timer)
            timer = setTimeout(() => void restart(role), RESTART_DEBOUNCE_MS)
          }),
        )
      } catch {
        say(`cannot watch services/${role} for changes; restart by hand`)
      }
    }
  }

  const stop = async (signal: string) => {
    stopping = true
    for (const watcher of watchers) watcher.close()
    const running = [...instances.values()].filter(isRunning)
    say(`${signal}: stopping ${running.length} instance(s) (leases revoked)…`)
    const allExited = new Promise<void>((resolve) => {
      onAllExited = resolve
      if (running.length === 0) resolve()
    })
    for (const instance of running) instance.process.kill('SIGTERM')
    const timer = setTimeout(() => {
      for (const instance of instances.values()) {
        if (isRunning(instance)) instance.process.kill('SIGKILL')
      }
    }, STOP_TIMEOUT_MS)
    await allExited
    clearTimeout(timer)
    if (etcd) await etcd.dispose()
    say('stopped')
  }
  return new Promise<number>((resolve) => {
    let signalled = false
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) return
      signalled = true
      void stop(signal).then(() => resolve(0))
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}
