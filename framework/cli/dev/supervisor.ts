import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { GATEWAY_NAME } from '../gateway-plan.js'
import type { Styler } from '../output.js'
import { formatInstanceLine, type InstanceLine } from './log-format.js'
import type { DevPlanEntry } from './plan.js'

const BIN = join(import.meta.dirname, '..', 'bin.js')
const COLORS = [36, 33, 35, 32, 34, 91, 96, 93]
const STOP_TIMEOUT_MS = 15_000

/** One `framework start <role>` child of `framework dev`. */
export interface DevInstance {
  /** `role#n`, the prefix of its output. */
  readonly name: string
  readonly role: string
  readonly process: ChildProcess
  /** From its `listening` event. */
  url: string | undefined
  /** Set by its first `registered` event. */
  registered: boolean
}

export interface SupervisorOptions {
  appRoot: string
  plan: DevPlanEntry[]
  /** Environment of every instance: the phone book (ETCD_ENDPOINTS, FRAMEWORK_NAMESPACE) included. */
  env: NodeJS.ProcessEnv
  out: NodeJS.WritableStream
  style: Styler
  /** A line of dev's own (`framework …`). */
  say(line: string): void
  /** Called once, when every planned instance has registered for the first time. */
  onAllRegistered(instances: DevInstance[]): void
  /** Also run `framework gateway` (some service exposes procedures); its URL once it listens. */
  gateway?: { onListening(url: string): void } | undefined
}

const isRunning = (instance: DevInstance) =>
  instance.process.exitCode === null && instance.process.signalCode === null

/**
 * Runs every role × its replicas as child processes, one colored, prefixed stream each; follows
 * each instance by the lifecycle events of its log lines; restarts roles; stops them all. When
 * some service exposes procedures it runs `framework gateway` too, restarted with any role.
 */
export class Supervisor {
  readonly #instances = new Map<string, DevInstance>()
  readonly #restarting = new Set<string>()
  readonly #width: number
  readonly #colorOf: Map<string, number>
  readonly #total: number
  #stopping = false
  #summaryShown = false
  #onAllExited: () => void = () => undefined
  #gateway: ChildProcess | undefined
  #gatewayRestarting = false

  constructor(private readonly options: SupervisorOptions) {
    const { plan } = options
    this.#total = plan.reduce((sum, entry) => sum + entry.replicas, 0)
    this.#width = Math.max(
      ...plan.map(({ role, replicas }) => `${role}#${replicas}`.length),
      options.gateway ? GATEWAY_NAME.length : 0,
    )
    this.#colorOf = new Map(
      [...plan.map(({ role }) => role), GATEWAY_NAME].map((key, i) => [
        key,
        COLORS[i % COLORS.length]!,
      ]),
    )
  }

  get instances(): DevInstance[] {
    return [...this.#instances.values()]
  }

  startAll(): void {
    for (const entry of this.options.plan) this.#startRole(entry)
    this.#startGateway()
  }

  /** The processes still running: instances, and the gateway. */
  #running(): ChildProcess[] {
    const processes = this.instances.filter(isRunning).map((instance) => instance.process)
    if (this.#gateway && this.#gateway.exitCode === null && this.#gateway.signalCode === null) {
      processes.push(this.#gateway)
    }
    return processes
  }

  /** Stops the gateway (SIGTERM: it drains) and starts it again; it loads every service definition. */
  async restartGateway(why: string): Promise<void> {
    const gateway = this.#gateway
    if (!this.options.gateway || this.#stopping || this.#gatewayRestarting) return
    this.#gatewayRestarting = true
    if (why) this.options.say(`${why}: restarting the gateway`)
    if (gateway && gateway.exitCode === null && gateway.signalCode === null) {
      await new Promise<void>((resolve) => {
        gateway.once('exit', () => resolve())
        gateway.kill('SIGTERM')
      })
    }
    this.#gatewayRestarting = false
    if (!this.#stopping) this.#startGateway()
  }

  /** Stops the roles' instances (SIGTERM: leases revoked) and starts them again. */
  async restart(roles: readonly string[], why: string): Promise<void> {
    const entries = this.options.plan.filter(
      ({ role }) => roles.includes(role) && !this.#restarting.has(role),
    )
    if (this.#stopping || entries.length === 0) return
    for (const { role } of entries) this.#restarting.add(role)
    const count = entries.reduce((sum, entry) => sum + entry.replicas, 0)
    this.options.say(
      `${why}: restarting ${entries.map(({ role }) => role).join(', ')} (${count} instance(s))`,
    )
    const old = this.instances.filter((instance) =>
      entries.some(({ role }) => role === instance.role),
    )
    await Promise.all([
      ...old.map(
        (instance) =>
          new Promise<void>((resolve) => {
            if (!isRunning(instance)) return resolve()
            instance.process.once('exit', () => resolve())
            instance.process.kill('SIGTERM')
          }),
      ),
      // The gateway loaded these roles' definitions (what they expose, their input schemas).
      this.restartGateway(''),
    ])
    for (const { role } of entries) this.#restarting.delete(role)
    if (this.#stopping) return
    for (const entry of entries) this.#startRole(entry)
  }

  /** SIGTERM to every process, SIGKILL to those still running after 15 s; resolves when all exited. */
  async stop(signal: string): Promise<void> {
    this.#stopping = true
    const running = this.#running()
    this.options.say(`${signal}: stopping ${running.length} process(es) (leases revoked)…`)
    const allExited = new Promise<void>((resolve) => {
      this.#onAllExited = resolve
      if (running.length === 0) resolve()
    })
    for (const child of running) child.kill('SIGTERM')
    const timer = setTimeout(() => {
      for (const child of this.#running()) child.kill('SIGKILL')
    }, STOP_TIMEOUT_MS)
    await allExited
    clearTimeout(timer)
  }

  #startRole({ role, replicas, port }: DevPlanEntry): void {
    // A fixed port fits one instance per host; replicas take free ports.
    for (let n = 1; n <= replicas; n++) this.#start(role, n, replicas === 1 ? port : undefined)
  }

  #start(role: string, n: number, port: number | undefined): void {
    const { env } = this.options
    const name = `${role}#${n}`
    const instance: DevInstance = {
      name,
      role,
      process: this.#spawn(
        name,
        role,
        ['start', role],
        {
          HOST: env.HOST || '127.0.0.1',
          ADVERTISE_HOST: env.ADVERTISE_HOST || '127.0.0.1',
          ...(port !== undefined ? { PORT: String(port) } : {}),
        },
        (line) => {
          if (line.event === 'listening' && typeof line.fields?.url === 'string') {
            instance.url = line.fields.url
          }
          if (line.event === 'registered' && !instance.registered) {
            instance.registered = true
            this.#registeredProgress(instance)
            this.#checkAllRegistered()
          }
        },
        () =>
          this.#instances.get(name)?.process === instance.process &&
          !this.#stopping &&
          !this.#restarting.has(role),
      ),
      url: undefined,
      registered: false,
    }
    this.#instances.set(name, instance)
  }

  #startGateway(): void {
    const gateway = this.options.gateway
    if (!gateway) return
    const { env } = this.options
    const child = this.#spawn(
      GATEWAY_NAME,
      GATEWAY_NAME,
      ['gateway'],
      { HOST: env.HOST || '127.0.0.1' },
      (line) => {
        if (line.event === 'listening' && typeof line.fields?.url === 'string') {
          gateway.onListening(line.fields.url)
        }
      },
      () => this.#gateway === child && !this.#stopping && !this.#gatewayRestarting,
    )
    this.#gateway = child
  }

  /**
   * A `framework <args>` child with a colored, prefixed output stream; `onLine` sees each log
   * line; an exit while `unexpected()` is said.
   */
  #spawn(
    name: string,
    colorKey: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    onLine: (line: InstanceLine) => void,
    unexpected: () => boolean,
  ): ChildProcess {
    const { appRoot, out, style } = this.options
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: appRoot,
      env: {
        ...this.options.env,
        ...env,
        // If dev dies without stopping us (kill -9), the process notices and stops itself.
        FRAMEWORK_PARENT_PID: String(process.pid),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const prefix = style.color(this.#colorOf.get(colorKey) ?? 0, `${name.padEnd(this.#width)} |`)
    if (child.stdout) {
      createInterface({ input: child.stdout }).on('line', (raw) => {
        const line = formatInstanceLine(raw, style)
        out.write(`${prefix} ${line.text}\n`)
        onLine(line)
      })
    }
    if (child.stderr) {
      createInterface({ input: child.stderr }).on('line', (text) =>
        out.write(`${prefix} ${text}\n`),
      )
    }
    child.on('exit', (code, signal) => {
      if (unexpected()) {
        this.options.say(
          `${name} exited (${signal ?? `code ${code}`}); fix and save a file it uses to restart it`,
        )
      }
      if (this.#stopping && this.#running().length === 0) this.#onAllExited()
    })
    return child
  }

  /** Until all are up, a count per registration ("3/4 registered"): a slow boot shows who is missing. */
  #registeredProgress(instance: DevInstance): void {
    if (this.#summaryShown) return
    const registered = this.instances.filter((candidate) => candidate.registered).length
    this.options.say(
      this.options.style.dim(
        `${registered}/${this.#total} registered: ${instance.name}${instance.url ? ` at ${instance.url}` : ''}`,
      ),
    )
  }

  #checkAllRegistered(): void {
    const all = this.instances
    if (!this.#summaryShown && all.length === this.#total && all.every((i) => i.registered)) {
      this.#summaryShown = true
      this.options.onAllRegistered(all)
    }
  }
}
