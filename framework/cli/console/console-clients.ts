import { AsyncLocalStorage } from 'node:async_hooks'
import type { Etcd3 } from 'etcd3'
import { type Logger, pino } from 'pino'
import { DEFAULT_TIMEOUT_MS, DependencyClient } from '../../client/dependency-client.js'
import { HttpTransport } from '../../client/http-transport.js'
import { RetryBudget } from '../../client/retry-budget.js'
import { resolveCallAuth } from '../../config/call-auth.js'
import { createBalancer } from '../../discovery/balancers/index.js'
import { EtcdResolver } from '../../discovery/etcd-resolver.js'
import { createEtcdClient } from '../../registry/etcd-client.js'
import { parseRecord, servicesPrefix } from '../../registry/record.js'
import { type CallTokens, callTokensFor } from '../../security/call-tokens.js'
import type { PhoneBookTarget } from '../phone-book-target.js'

/** One console call's answer: the result, the instance that served it, and how long it took. */
export interface ServedCall {
  result: unknown
  /** The instance that sent the answer (the last attempt's). */
  instance: { id: string; url: string } | undefined
  ms: number
}

/** The URL each call's attempts went to, per call (calls from the console may overlap). */
const attemptUrl = new AsyncLocalStorage<{ url?: string }>()

/** The transport `ctx.deps` uses, noting where each attempt went. */
class ServedByTransport extends HttpTransport {
  override send(...args: Parameters<HttpTransport['send']>): ReturnType<HttpTransport['send']> {
    const store = attemptUrl.getStore()
    if (store) store.url = args[0]
    return super.send(...args)
  }
}

/** A role as the live phone book shows it: its procedures (from the records) and instances. */
export interface LiveRole {
  role: string
  procedures: Record<string, 'query' | 'mutation'>
  instances: number
}

/**
 * The console's way to the services: one etcd client, and per role called (or watched) a
 * resolver that lists then watches, with the client `ctx.deps` uses (p2c, retries, ejection,
 * deadlines, the RPC stream). Every watch ends with `close()`.
 */
export class ConsoleClients {
  readonly #etcd: Etcd3
  readonly #transport = new ServedByTransport()
  readonly #roles = new Map<string, { resolver: EtcdResolver; client: DependencyClient }>()
  readonly #log: Logger = pino({ level: 'silent' })
  #closed = false
  /** Call tokens from FRAMEWORK_SECRET, signed as `cli` (as `framework call` does). */
  readonly #tokens: CallTokens | undefined

  constructor(readonly target: PhoneBookTarget) {
    this.#etcd = createEtcdClient(target.etcdEndpoints, target.etcdAccess)
    this.#tokens = callTokensFor(resolveCallAuth(process.env), 'cli', target.namespace)
  }

  /** The resolver (list + watch) of `role`, made on first use. */
  resolver(role: string): EtcdResolver {
    return this.#entry(role).resolver
  }

  /** Watches open now (one per role the console has called or watched). */
  get openWatches(): number {
    return this.#roles.size
  }

  /** Every role registered now, with the union of its instances' procedures. */
  async liveRoles(): Promise<LiveRole[]> {
    const kvs = await this.#etcd.getAll().prefix(servicesPrefix(this.target.namespace)).strings()
    const roles = new Map<string, LiveRole>()
    for (const [key, value] of Object.entries(kvs)) {
      const parsed = parseRecord(key, value)
      if (!parsed.ok) continue
      const { record } = parsed
      const entry = roles.get(record.role) ?? {
        role: record.role,
        procedures: {},
        instances: 0,
      }
      Object.assign(entry.procedures, record.procedures)
      entry.instances++
      roles.set(record.role, entry)
    }
    return [...roles.values()].sort((a, b) => a.role.localeCompare(b.role))
  }

  async call(role: string, path: string, input: unknown): Promise<ServedCall> {
    const { client, resolver } = this.#entry(role)
    const store: { url?: string } = {}
    const started = performance.now()
    const result = await attemptUrl.run(store, () => client.call(path, input))
    const ms = performance.now() - started
    const endpoint = resolver.endpoints.find((candidate) => candidate.url === store.url)
    const instance =
      store.url === undefined ? undefined : { id: endpoint?.id ?? '?', url: store.url }
    return { result, instance, ms }
  }

  #entry(role: string): { resolver: EtcdResolver; client: DependencyClient } {
    if (this.#closed) throw new Error('the console is closing')
    let entry = this.#roles.get(role)
    if (!entry) {
      const resolver = new EtcdResolver(this.#etcd, role, this.target.namespace, this.#log)
      const client = new DependencyClient({
        role,
        namespace: this.target.namespace,
        etcdEndpoints: this.target.etcdEndpoints,
        resolver,
        transport: this.#transport,
        balancer: createBalancer(),
        budget: new RetryBudget(),
        timeoutMs: DEFAULT_TIMEOUT_MS,
        log: this.#log,
        tokens: this.#tokens,
      })
      entry = { resolver, client }
      this.#roles.set(role, entry)
    }
    return entry
  }

  /** Cancels every watch, closes connections and the etcd client; returns how many watches ended. */
  async close(): Promise<number> {
    this.#closed = true
    const watches = this.#roles.size
    await Promise.all([...this.#roles.values()].map(({ resolver }) => resolver.close()))
    this.#roles.clear()
    await this.#transport.close()
    this.#etcd.close()
    return watches
  }
}
