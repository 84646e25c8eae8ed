import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll } from 'vitest'
import { freePort } from '../../framework/cli/free-port.js'
import { ETCD_INSTALL_HINT } from '../../framework/cli/local-etcd.js'
import { killAll, type SpawnedInstance, spawnInstance, testEnv } from './instance.js'

const ETCD_BIN = process.env.ETCD_BIN ?? 'etcd'
/** Bytes of each member's own output kept for error messages. */
const OUTPUT_TAIL = 32 * 1024
const POLL_MS = 50

/** What `POST /v3/maintenance/status` says about a member (uint64s as strings, as the gateway sends them). */
export interface MemberStatus {
  memberId: string
  /** Member id of the leader this member follows; '0' while it knows none. */
  leader: string
  clusterId: string
  raftTerm: string
  raftIndex: string
  revision: string
}

/** One key-value read through the JSON gateway. */
export interface GatewayKv {
  key: string
  value: string
  /** Lease id (decimal string), '0' when none. */
  lease: string
  modRevision: string
}

/** One etcd process of an {@link EtcdCluster}: its ports, data dir and (while running) process. */
export class EtcdMember {
  #process: ChildProcess | undefined
  #output = ''
  /** Learned from the member's own status answer; kept while it is down. */
  memberId: string | undefined

  constructor(
    readonly name: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly dataDir: string,
  ) {}

  /** Client URL: `http://127.0.0.1:<clientPort>`. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.clientPort}`
  }

  get peerUrl(): string {
    return `http://127.0.0.1:${this.peerPort}`
  }

  get running(): boolean {
    const child = this.#process
    return child !== undefined && child.exitCode === null && child.signalCode === null
  }

  get pid(): number | undefined {
    return this.running ? this.#process?.pid : undefined
  }

  /** The tail of the member's stdout+stderr since it was last started. */
  get output(): string {
    return this.#output
  }

  /** @internal used by EtcdCluster */
  spawn(args: string[]): ChildProcess {
    if (this.running) throw new Error(`etcd member ${this.name} is already running`)
    mkdirSync(this.dataDir, { recursive: true })
    const child = spawn(ETCD_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    this.#output = ''
    const append = (chunk: Buffer) => {
      this.#output = (this.#output + chunk.toString()).slice(-OUTPUT_TAIL)
    }
    child.stdout?.on('data', append)
    child.stderr?.on('data', append)
    child.once('error', (err) => append(Buffer.from(`spawn error: ${err.message}\n`)))
    this.#process = child
    return child
  }

  /** Sends `signal` to this member's process (by its pid) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#process
    if (!child) return
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      const exited = once(child, 'exit')
      child.kill(signal)
      await exited
    }
    this.#process = undefined
  }
}

export interface EtcdClusterOptions {
  /** Members (default 3). */
  size?: number
  /** Bound on reaching a healthy cluster with an agreed leader (default 20 s). */
  startTimeoutMs?: number
}

/**
 * A real N-member (default 3) etcd cluster from the `etcd` binary, on free 127.0.0.1 ports with
 * temporary data dirs: `--initial-cluster` names all members, `--initial-cluster-state new`, a
 * unique `--initial-cluster-token`. A member can be killed with SIGKILL and restarted from the same
 * data dir with the same flags but `--initial-cluster-state existing`. Leadership is read from
 * each member's `/v3/maintenance/status` (JSON gateway). `dispose()` kills every member and
 * removes the data dirs.
 */
export class EtcdCluster {
  readonly #root: string
  #disposed = false
  readonly #onExit = () => {
    // Best effort if the test process ends without dispose(): no etcd outlives it.
    for (const member of this.members) {
      const pid = member.pid
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {}
      }
    }
  }

  private constructor(
    readonly members: readonly EtcdMember[],
    readonly token: string,
    root: string,
  ) {
    this.#root = root
    process.once('exit', this.#onExit)
  }

  /**
   * Starts the members together and resolves once every one answers `/health` and all report the
   * same leader. A start that fails (a port taken meanwhile, say) is retried with new ports, twice.
   */
  static async start(options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    const { size = 3, startTimeoutMs = 20_000 } = options
    let lastError: unknown
    for (let attempt = 0; attempt < 3; attempt++) {
      const cluster = await EtcdCluster.#create(size)
      try {
        await Promise.all(cluster.members.map((member) => cluster.#spawn(member, 'new')))
        await cluster.waitHealthy(startTimeoutMs)
        return cluster
      } catch (err) {
        lastError = err
        await cluster.dispose()
        // A binary that cannot run will not run on the next attempt either.
        if (err instanceof Error && err.message.includes('cannot run')) throw err
      }
    }
    throw lastError
  }

  static async #create(size: number): Promise<EtcdCluster> {
    const ports = new Set<number>()
    for (let tries = 0; ports.size < size * 2 && tries < size * 20; tries++) {
      ports.add(await freePort())
    }
    if (ports.size < size * 2) throw new Error('could not find free loopback ports for etcd')
    const list = [...ports]
    const root = mkdtempSync(join(tmpdir(), 'framework-etcd-cluster-'))
    const members = Array.from(
      { length: size },
      (_, i) =>
        new EtcdMember(`m${i + 1}`, list[i * 2]!, list[i * 2 + 1]!, join(root, `m${i + 1}`)),
    )
    const token = `framework-test-${process.pid}-${Date.now()}-${randomBytes(4).toString('hex')}`
    return new EtcdCluster(members, token, root)
  }

  /** Every member's client URL, in member order (running or not). */
  get endpoints(): string[] {
    return this.members.map((member) => member.endpoint)
  }

  /** `ETCD_ENDPOINTS` for the whole cluster: every client URL, comma-separated. */
  get endpointList(): string {
    return this.endpoints.join(',')
  }

  get initialCluster(): string {
    return this.members.map((member) => `${member.name}=${member.peerUrl}`).join(',')
  }

  running(): EtcdMember[] {
    return this.members.filter((member) => member.running)
  }

  /** The member with this etcd member id (as a decimal string), if it is one of ours. */
  byId(memberId: string): EtcdMember | undefined {
    return this.members.find((member) => member.memberId === memberId)
  }

  /** `POST /v3/maintenance/status` on one member. */
  async status(member: EtcdMember, timeoutMs = 1_000): Promise<MemberStatus> {
    const body = (await this.#gateway(member, 'maintenance/status', {}, timeoutMs)) as {
      header: { member_id: string; cluster_id: string; revision: string }
      leader?: string
      raftTerm?: string
      raftIndex?: string
    }
    const status: MemberStatus = {
      memberId: String(body.header.member_id),
      leader: String(body.leader ?? '0'),
      clusterId: String(body.header.cluster_id),
      raftTerm: String(body.raftTerm ?? '0'),
      raftIndex: String(body.raftIndex ?? '0'),
      revision: String(body.header.revision),
    }
    member.memberId = status.memberId
    return status
  }

  /** `GET /health` answered `{"health":"true"}` (the member has a leader and serves). */
  async healthy(member: EtcdMember, timeoutMs = 1_000): Promise<boolean> {
    if (!member.running) return false
    try {
      const response = await fetch(`${member.endpoint}/health`, {
        signal: AbortSignal.timeout(timeoutMs),
      })
      const body = (await response.json()) as { health?: string }
      return response.ok && body.health === 'true'
    } catch {
      return false
    }
  }

  /**
   * The leader if every running member (or those in `among`) answers healthy and names the same
   * leader, and that leader is one of them; otherwise undefined. One round, no waiting.
   */
  async agreedLeader(
    among: readonly EtcdMember[] = this.running(),
  ): Promise<EtcdMember | undefined> {
    if (among.length === 0) return undefined
    try {
      const answers = await Promise.all(
        among.map(async (member) => {
          if (!(await this.healthy(member))) throw new Error(`${member.name} not healthy`)
          return this.status(member)
        }),
      )
      const leader = answers[0]!.leader
      if (leader === '0' || answers.some((answer) => answer.leader !== leader)) return undefined
      const member = this.byId(leader)
      return member?.running ? member : undefined
    } catch {
      return undefined
    }
  }

  /**
   * Waits until every running member is healthy and they agree on a running leader (other than
   * `not`, when given); resolves with the leader and the time waited.
   */
  async waitForLeader(
    options: { not?: EtcdMember; timeoutMs?: number } = {},
  ): Promise<{ leader: EtcdMember; ms: number }> {
    const { not, timeoutMs = 15_000 } = options
    const started = Date.now()
    for (;;) {
      const leader = await this.agreedLeader()
      if (leader && leader !== not) return { leader, ms: Date.now() - started }
      if (Date.now() - started > timeoutMs) {
        const states = await Promise.all(
          this.members.map(async (member) => {
            if (!member.running) return `${member.name}: down`
            const status = await this.status(member).catch((err: Error) => err.message)
            return `${member.name}: ${typeof status === 'string' ? status : `leader ${status.leader}, term ${status.raftTerm}`}`
          }),
        )
        throw new Error(
          `no agreed etcd leader${not ? ` other than ${not.name}` : ''} within ${timeoutMs} ms (${states.join('; ')})\n${this.#outputs()}`,
        )
      }
      await sleep(POLL_MS)
    }
  }

  /** Waits until the cluster is healthy with one agreed leader; resolves with the leader. */
  async waitHealthy(timeoutMs = 20_000): Promise<EtcdMember> {
    const started = Date.now()
    for (;;) {
      const exited = this.members.filter((member) => !member.running)
      if (exited.length > 0) {
        throw new Error(
          `etcd member(s) ${exited.map((m) => m.name).join(', ')} exited while starting\n${this.#outputs(exited)}`,
        )
      }
      const leader = await this.agreedLeader()
      if (leader) return leader
      if (Date.now() - started > timeoutMs) {
        throw new Error(`etcd cluster not healthy within ${timeoutMs} ms\n${this.#outputs()}`)
      }
      await sleep(POLL_MS)
    }
  }

  /** The current agreed leader; throws when the running members do not agree on one. */
  async leader(): Promise<EtcdMember> {
    const leader = await this.agreedLeader()
    if (!leader) throw new Error('the etcd members do not agree on a leader right now')
    return leader
  }

  /** kill -9 one member (by its pid) and wait for its exit; its data dir is kept. */
  async kill(member: EtcdMember): Promise<void> {
    await member.stop('SIGKILL')
  }

  /**
   * Starts a stopped member again from its data dir with the same flags but
   * `--initial-cluster-state existing`, and waits until it is healthy and names the same leader as
   * every other running member. Resolves with the time that took.
   */
  async restart(member: EtcdMember, timeoutMs = 20_000): Promise<number> {
    if (member.running) throw new Error(`etcd member ${member.name} is running`)
    const started = Date.now()
    await this.#spawn(member, 'existing')
    for (;;) {
      if (!member.running) {
        throw new Error(
          `etcd member ${member.name} exited after restart\n${this.#outputs([member])}`,
        )
      }
      if (await this.agreedLeader()) return Date.now() - started
      if (Date.now() - started > timeoutMs) {
        throw new Error(
          `etcd member ${member.name} did not rejoin within ${timeoutMs} ms\n${this.#outputs()}`,
        )
      }
      await sleep(POLL_MS)
    }
  }

  /**
   * Starts every stopped member again from its data dir (after a full outage no single member has
   * a quorum, so they come back together) and waits until all agree on a leader. Resolves with the
   * time that took.
   */
  async restartAll(timeoutMs = 20_000): Promise<number> {
    const started = Date.now()
    const stopped = this.members.filter((member) => !member.running)
    await Promise.all(stopped.map((member) => this.#spawn(member, 'existing')))
    for (;;) {
      const exited = stopped.filter((member) => !member.running)
      if (exited.length > 0) {
        throw new Error(`etcd members exited after restart\n${this.#outputs(exited)}`)
      }
      if (await this.agreedLeader(this.members)) return Date.now() - started
      if (Date.now() - started > timeoutMs) {
        throw new Error(`etcd cluster did not come back within ${timeoutMs} ms\n${this.#outputs()}`)
      }
      await sleep(POLL_MS)
    }
  }

  /** Puts `key` = `value` through one member (JSON gateway); resolves with the new revision. */
  async put(member: EtcdMember, key: string, value: string, timeoutMs = 2_000): Promise<string> {
    const body = (await this.#gateway(
      member,
      'kv/put',
      { key: b64(key), value: b64(value) },
      timeoutMs,
    )) as { header: { revision: string } }
    return String(body.header.revision)
  }

  /**
   * Reads one key, or every key under a prefix, through one member. `serializable` reads the
   * member's local store without asking the leader (works while there is none).
   */
  async range(
    member: EtcdMember,
    key: string,
    options: { prefix?: boolean; serializable?: boolean; timeoutMs?: number } = {},
  ): Promise<GatewayKv[]> {
    const request: Record<string, unknown> = { key: b64(key) }
    if (options.prefix) request.range_end = prefixEnd(key).toString('base64')
    if (options.serializable) request.serializable = true
    const body = (await this.#gateway(member, 'kv/range', request, options.timeoutMs ?? 2_000)) as {
      kvs?: { key: string; value?: string; lease?: string; mod_revision?: string }[]
    }
    return (body.kvs ?? []).map((kv) => ({
      key: unb64(kv.key),
      value: kv.value === undefined ? '' : unb64(kv.value),
      lease: String(kv.lease ?? '0'),
      modRevision: String(kv.mod_revision ?? '0'),
    }))
  }

  /** Kills every member and removes the data dirs. Safe to call twice. */
  async dispose(): Promise<void> {
    if (this.#disposed) return
    this.#disposed = true
    await Promise.all(this.members.map((member) => member.stop('SIGKILL')))
    process.removeListener('exit', this.#onExit)
    rmSync(this.#root, { recursive: true, force: true })
  }

  async #spawn(member: EtcdMember, state: 'new' | 'existing'): Promise<void> {
    if (this.#disposed) throw new Error('the etcd cluster is disposed')
    const child = member.spawn([
      '--name',
      member.name,
      '--data-dir',
      member.dataDir,
      '--listen-client-urls',
      member.endpoint,
      '--advertise-client-urls',
      member.endpoint,
      '--listen-peer-urls',
      member.peerUrl,
      '--initial-advertise-peer-urls',
      member.peerUrl,
      '--initial-cluster',
      this.initialCluster,
      '--initial-cluster-state',
      state,
      '--initial-cluster-token',
      this.token,
      '--logger',
      'zap',
      '--log-outputs',
      'stderr',
      '--log-level',
      'error',
    ])
    // A binary that is missing fails at spawn: say so rather than time out.
    // (events.once rejects on 'error', so this settles either way.)
    const spawned = await once(child, 'spawn').then(
      () => undefined,
      (err: Error) => err,
    )
    if (spawned) {
      await member.stop('SIGKILL')
      throw new Error(`cannot run '${ETCD_BIN}' (${spawned.message}): ${ETCD_INSTALL_HINT}`)
    }
  }

  async #gateway(
    member: EtcdMember,
    path: string,
    request: unknown,
    timeoutMs: number,
  ): Promise<unknown> {
    const response = await fetch(`${member.endpoint}/v3/${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request),
      signal: AbortSignal.timeout(timeoutMs),
    })
    const text = await response.text()
    if (!response.ok) throw new Error(`${member.name} /v3/${path}: ${response.status} ${text}`)
    return JSON.parse(text) as unknown
  }

  #outputs(members: readonly EtcdMember[] = this.members): string {
    return members
      .map(
        (member) => `--- ${member.name} (${member.endpoint}) ---\n${member.output.slice(-4_000)}`,
      )
      .join('\n')
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function b64(text: string): string {
  return Buffer.from(text).toString('base64')
}

function unb64(text: string): string {
  return Buffer.from(text, 'base64').toString()
}

/** The range end that covers every key starting with `prefix` (etcd's prefix rule). */
function prefixEnd(prefix: string): Buffer {
  const bytes = Buffer.from(prefix)
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1))
      end[i] = end[i]! + 1
      return end
    }
  }
  return Buffer.from([0])
}

export interface EtcdClusterFixture {
  readonly cluster: EtcdCluster
  /** A fresh namespace per call: `<prefix>-<pid>-<n>`. */
  namespace(): string
  /** `framework start <role>` with every member in ETCD_ENDPOINTS; killed after each test. */
  spawn(role: string, namespace: string, env?: Record<string, string>): SpawnedInstance
}

/**
 * A 3-member etcd cluster for a test file, and instances that are killed after each test (members
 * a test left down are started again, so every test begins with three).
 */
export function useEtcdCluster(prefix: string, ttlSeconds = 2): EtcdClusterFixture {
  let cluster: EtcdCluster | undefined
  const running: SpawnedInstance[] = []
  let counter = 0
  beforeAll(async () => {
    cluster = await EtcdCluster.start()
  })
  afterEach(async () => {
    await killAll(running)
    if (!cluster) return
    const down = cluster.members.filter((member) => !member.running)
    if (down.length === cluster.members.length) await cluster.restartAll()
    else for (const member of down) await cluster.restart(member)
  })
  afterAll(async () => {
    await cluster?.dispose()
  })
  return {
    get cluster() {
      if (!cluster) throw new Error('the etcd cluster is started in beforeAll')
      return cluster
    },
    namespace: () => `${prefix}-${process.pid}-${++counter}`,
    spawn(role, namespace, env = {}) {
      const instance = spawnInstance(role, {
        env: {
          ...testEnv(this.cluster.endpointList, namespace),
          FRAMEWORK_TTL: String(ttlSeconds),
          ...env,
        },
      })
      running.push(instance)
      return instance
    },
  }
}
