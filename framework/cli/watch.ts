import { connect } from '../client/connect.js'
import type { EtcdAccessChoice } from '../config/etcd-access.js'
import { assertRole } from '../service/role.js'

export interface WatchOptions {
  role: string
  etcdEndpoints?: string
  /** TLS files and etcd user (flags), winning over ETCD_CA_FILE, ETCD_USERNAME, ... */
  etcdAccess?: EtcdAccessChoice
  namespace?: string
  intervalMs?: number
  /** Where lines go; default stdout. */
  write?: (line: string) => void
  signal?: AbortSignal
}

function time(): string {
  return new Date().toISOString().slice(11, 23)
}

/**
 * Follows one role in the phone book: a line for each instance that comes or goes and, every
 * `intervalMs`, the instance a client would pick now. Runs until `signal` aborts.
 */
export async function watchRole(options: WatchOptions): Promise<void> {
  const { role, intervalMs = 500, write = (line) => process.stdout.write(`${line}\n`) } = options
  assertRole(role, 'watch <role>')
  const connection = connect({
    deps: { [role]: true },
    etcdEndpoints: options.etcdEndpoints,
    etcdAccess: options.etcdAccess,
    namespace: options.namespace,
  })
  const resolver = connection.dependencies.resolvers.get(role)!
  const client = connection.dependencies.clients.get(role)!
  const unsubscribe = resolver.subscribe((update) => {
    if (update.op === 'update') return
    const sign = update.op === 'add' ? '+' : '-'
    write(`${time()} ${sign} ${role} ${update.endpoint.id} ${update.endpoint.url}`)
  })
  const tick = () => {
    const endpoint = client.pick()
    const stale = resolver.stale ? ' (phone book unreachable: last known set)' : ''
    write(
      endpoint
        ? `${time()} → ${role} ${endpoint.id} ${endpoint.url} (${resolver.endpoints.length} live)${stale}`
        : `${time()} → no live instance of role '${role}'${stale}`,
    )
  }
  const timer = setInterval(tick, intervalMs)
  await new Promise<void>((resolve) => {
    if (options.signal?.aborted) return resolve()
    options.signal?.addEventListener('abort', () => resolve(), { once: true })
  })
  clearInterval(timer)
  unsubscribe()
  await connection.close()
}
