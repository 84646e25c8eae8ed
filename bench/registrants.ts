/**
 * A process holding many registered instances: `count` framework `Registration`s (the class the
 * runtime uses), spread round-robin over `roles`, on one etcd client, with load figures from the
 * runtime's `LoadSampler` (one per process, so every refresh sees changed figures: the worst case
 * for etcd writes). Reports `registered` with the keys over IPC; `stop` revokes every lease.
 * Killed with SIGKILL, its leases expire after their TTL.
 */
import { createEtcdClient } from '../framework/registry/etcd-client.js'
import { instanceKey } from '../framework/registry/record.js'
import { Registration } from '../framework/registry/registration.js'
import { LoadSampler } from '../framework/runtime/load.js'
import { answerPings, benchLog, type ChildMessage, now, sampleRecord } from './support.js'

export interface RegistrantsConfig {
  endpoint: string
  namespace: string
  roles: string[]
  count: number
  /** Distinguishes instance ids of several registrant processes. */
  name: string
  ttlSeconds: number
  loadRefreshMs: number
  /** Registrations started at once. */
  concurrency: number
}

const config = JSON.parse(process.argv[2] ?? '{}') as RegistrantsConfig
answerPings()
const client = createEtcdClient([config.endpoint])
const log = benchLog()
const load = new LoadSampler()
const registrations: Registration[] = []
const keys: string[] = []

const started = now()
for (let first = 0; first < config.count; first += config.concurrency) {
  const batch: Promise<void>[] = []
  for (let i = first; i < Math.min(config.count, first + config.concurrency); i++) {
    const role = config.roles[i % config.roles.length]!
    const id = `${config.name}-${i.toString().padStart(4, '0')}`
    const key = instanceKey(config.namespace, role, id)
    const base = sampleRecord(role, id)
    const registration = new Registration({
      client,
      endpoints: [config.endpoint],
      key,
      ttlSeconds: config.ttlSeconds,
      loadRefreshMs: config.loadRefreshMs,
      record: () => ({ ...base, load: load.sample() }),
      log,
    })
    registrations.push(registration)
    keys.push(key)
    batch.push(new Promise<void>((resolve) => registration.once('registered', resolve)))
    registration.start()
  }
  await Promise.all(batch)
}
process.send?.({ type: 'registered', keys, ms: now() - started })

process.on('message', async (message: ChildMessage) => {
  if (message.type !== 'stop') return
  await Promise.all(registrations.map((registration) => registration.stop()))
  client.close()
  load.close()
  process.send?.({ type: 'stopped' })
  process.disconnect?.()
})
