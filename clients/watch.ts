/**
 * The classic watch client: follows one role in the phone book, prints a line for each instance
 * that comes or goes and, every 500 ms, the address a client would pick now.
 *
 *   ETCD_ENDPOINTS=http://127.0.0.1:2379 FRAMEWORK_NAMESPACE=shop npx tsx clients/watch.ts cache
 */
import { pathToFileURL } from 'node:url'
import { connect } from '../framework/index.js'
import { assertRole } from '../framework/service/role.js'

export interface WatchOptions {
  role: string
  etcdEndpoints?: string
  namespace?: string
  intervalMs?: number
  /** Where lines go; default stdout. */
  write?: (line: string) => void
  signal?: AbortSignal
}

function time(): string {
  return new Date().toISOString().slice(11, 23)
}

/** Runs until `signal` aborts. */
export async function watchRole(options: WatchOptions): Promise<void> {
  const { role, intervalMs = 500, write = (line) => process.stdout.write(`${line}\n`) } = options
  assertRole(role, 'watch <role>')
  const connection = connect({
    deps: { [role]: true },
    etcdEndpoints: options.etcdEndpoints,
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

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const role = process.argv[2]
  if (!role) {
    process.stderr.write(
      'usage: tsx clients/watch.ts <role>   (ETCD_ENDPOINTS, FRAMEWORK_NAMESPACE from the environment)\n',
    )
    process.exit(2)
  }
  const stop = new AbortController()
  process.once('SIGINT', () => stop.abort())
  process.once('SIGTERM', () => stop.abort())
  watchRole({ role, signal: stop.signal }).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`watch: ${err instanceof Error ? err.message : String(err)}\n`)
      process.exit(2)
    },
  )
}
