/**
 * The classic watch client: follows one role in the phone book, prints a line for each instance
 * that comes or goes and, every 500 ms, the address a client would pick now.
 *
 *   ETCD_ENDPOINTS=http://127.0.0.1:2379 FRAMEWORK_NAMESPACE=shop npx tsx clients/watch.ts cache
 *
 * `framework watch <role>` is the same program.
 */
import { pathToFileURL } from 'node:url'
import { watchRole } from '../framework/cli/watch.js'

export { watchRole }

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
