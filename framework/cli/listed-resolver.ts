import type { EtcdAccess } from '../config/etcd-access.js'
import { Endpoint } from '../discovery/endpoint.js'
import type { Resolver, ResolverUpdate } from '../discovery/resolver.js'
import { parseRecord, rolePrefix } from '../registry/record.js'
import { EtcdGateway } from './etcd-gateway.js'

/**
 * A role's instances as listed once through etcd's JSON gateway: the resolver of a one-shot
 * (`framework call`), which ends before a watch would tell it anything.
 */
export class ListedResolver implements Resolver {
  endpoints: Endpoint[] = []
  stale = false
  listed = false
  lastError: string | undefined
  readonly #listing: Promise<void>

  constructor(
    readonly role: string,
    namespace: string,
    etcdEndpoints: readonly string[],
    deadline: number,
    access?: EtcdAccess,
  ) {
    this.#listing = new EtcdGateway(etcdEndpoints, deadline, access)
      .range(rolePrefix(namespace, role))
      .then(
        (kvs) => {
          for (const kv of kvs) {
            const parsed = parseRecord(kv.key, kv.value)
            if (parsed.ok) this.endpoints.push(new Endpoint(kv.key, parsed.record))
          }
          this.listed = true
        },
        (err: unknown) => {
          this.lastError = (err as Error).message
          this.stale = true
        },
      )
  }

  async whenListed(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      this.#listing,
      new Promise((resolve) => {
        timer = setTimeout(resolve, timeoutMs)
      }),
    ])
    clearTimeout(timer)
    if (!this.listed) {
      throw new Error(
        `cannot list role '${this.role}' in etcd (${this.lastError ?? `no answer in ${timeoutMs} ms`})`,
      )
    }
  }

  subscribe(_listener: (update: ResolverUpdate) => void): () => void {
    return () => undefined
  }

  async close(): Promise<void> {
    await this.#listing
  }
}
