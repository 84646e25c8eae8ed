/**
 * scale's client process (run with --expose-gc): `clients` × `connect()` with every role as a
 * dependency (each a resolver listing and watching its role), started before any instance
 * registers. Answers over IPC:
 *   count  — resolver events received so far (by op), relists after watch reconnects, records
 *            held, the process's CPU time
 *   memory — heap per record held: (heap now − heap of the same clients before any record) /
 *            records, both after full GCs
 */
import { pino } from 'pino'
import { connect } from '../framework/client/connect.js'
import type { AnyServiceDefinition } from '../framework/service/define-service.js'
import { answerPings, type ChildMessage, now } from './support.js'

export interface WatchersConfig {
  endpoint: string
  namespace: string
  roles: string[]
  clients: number
  perRole: number
}

const config = JSON.parse(process.argv[2] ?? '{}') as WatchersConfig
const gc = (globalThis as { gc?: () => void }).gc
if (!gc) throw new Error('run with --expose-gc')
answerPings()
// Warnings to stderr; the info line of every relist after a watch reconnect is counted.
let relists = 0
const log = pino(
  { level: 'info' },
  {
    write(line: string) {
      if (line.includes('listing again')) relists++
      else if (!line.includes('"level":30')) process.stderr.write(line)
    },
  },
)
const deps = Object.fromEntries(config.roles.map((role) => [role, true as const]))

function heap(): number {
  gc!()
  gc!()
  return process.memoryUsage().heapUsed
}

async function clients(namespace: string) {
  const made = Array.from({ length: config.clients }, () =>
    connect<Record<string, AnyServiceDefinition>>({
      deps,
      etcdEndpoints: config.endpoint,
      namespace,
      log,
    }),
  )
  await Promise.all(
    made.flatMap((client) =>
      [...client.dependencies.resolvers.values()].map((resolver) => resolver.whenListed(60_000)),
    ),
  )
  return made
}

const h0 = heap()
// The clients start before any instance registers: their heap grows only by the records.
const clientsStarted = now()
const watching = await clients(config.namespace)
const listEmptyMs = now() - clientsStarted
const resolvers = watching.flatMap((client) => [...client.dependencies.resolvers.values()])
const h1 = heap()
const updates = { add: 0, update: 0, remove: 0 }
for (const resolver of resolvers) resolver.subscribe((update) => updates[update.op]++)
const held = () => resolvers.reduce((sum, resolver) => sum + resolver.endpoints.length, 0)
process.send?.({ type: 'ready', resolvers: resolvers.length, listEmptyMs })

process.on('message', (message: ChildMessage) => {
  if (message.type === 'count') {
    process.send?.({
      type: 'updates',
      updates: { ...updates },
      relists,
      held: held(),
      // Resolvers not holding every instance of their role, for the report.
      short: watching.flatMap((client, c) =>
        [...client.dependencies.resolvers.values()]
          .filter((resolver) => resolver.endpoints.length !== config.perRole)
          .map((resolver) => ({
            client: c,
            role: resolver.role,
            held: resolver.endpoints.length,
            stale: resolver.stale,
            lastError: resolver.lastError,
          })),
      ),
      cpu: process.cpuUsage(),
      at: now(),
    })
  } else if (message.type === 'memory') {
    const h2 = heap()
    process.send?.({
      type: 'memory',
      held: held(),
      heapBaseline: h0,
      heapClients: h1,
      heapWithRecords: h2,
      bytesPerResolver: (h1 - h0) / resolvers.length,
      bytesPerRecord: (h2 - h1) / held(),
      rss: process.memoryUsage().rss,
    })
  }
})
