/**
 * propagation's writer process: produces timed phone book events, the three variants taking turns
 * event by event (round robin) so that they share the machine's noise, bursts included:
 *   raw        — etcd3 `put` of a key, then `delete` (the floor: one write each)
 *   raw-lease  — etcd3 lease grant + put on it, then lease revoke (what a registration needs)
 *   framework  — the framework's `Registration`, on its etcd client, as the runtime drives it:
 *                `prepare()` (the lease grant, which the runtime starts while its server is still
 *                booting) is awaited untimed; what is timed is `start()` (the instance is ready to
 *                serve) → 'registered', then `stop()`. So the framework's add is one etcd write
 *                (the put) on a lease granted beforehand; raw-lease times both writes.
 * Each event is reported with `t0` (our `now()` just before the operation) and `ack` (after it
 * returned); the parent, which watches, subtracts. This process's GC pauses are reported too, so
 * that a slow event can be told apart from one our own GC held up. Driven over IPC: waits for
 * `go`, ends with `events`.
 */
import { PerformanceObserver } from 'node:perf_hooks'
import { Etcd3 } from 'etcd3'
import { createEtcdClient } from '../framework/registry/etcd-client.js'
import { instanceKey } from '../framework/registry/record.js'
import { Registration } from '../framework/registry/registration.js'
import { answerPings, benchLog, type ChildMessage, now, sampleRecord, sleep } from './support.js'

export interface WriterConfig {
  endpoint: string
  namespace: string
  /** Raw keys go under `<rawPrefix>put/` and `<rawPrefix>lease/`. */
  rawPrefix: string
  role: string
  /** Each round produces one event pair (add, remove) of every variant. */
  rounds: number
  gapMs: number
  ttlSeconds: number
}

export interface WrittenEvent {
  variant: 'raw' | 'raw-lease' | 'framework'
  op: 'add' | 'remove'
  key: string
  t0: number
  ack: number
}

/** One GC pause of the writer, on the `now()` clock. */
export interface GcPause {
  start: number
  end: number
}

const config = JSON.parse(process.argv[2] ?? '{}') as WriterConfig
answerPings()
const go = new Promise<void>((resolve) =>
  process.on('message', (message: ChildMessage) => {
    if (message.type === 'go') resolve()
  }),
)
const raw = new Etcd3({ hosts: [config.endpoint] })
const framework = createEtcdClient([config.endpoint])
const log = benchLog()
// Connections up before the first timed event.
await raw.get('/warmup').string()
await framework.get('/warmup').string()
process.send?.({ type: 'ready' })
await go

/**
 * The pause between two timed operations, with a minor GC in its middle (the child runs with
 * --expose-gc), the same for every variant: a scavenge of this process then seldom falls inside a
 * timed window, where on 2 cores its parallel threads starve etcd and the watcher for several ms
 * (the variant that allocates most would be charged for the bench's own GC). In the middle: the
 * event just written has been seen by then, and the next is half a gap away.
 */
const collect = (globalThis as { gc?: (options: { type: 'minor' }) => void }).gc
async function gap(): Promise<void> {
  await sleep(config.gapMs / 2)
  collect?.({ type: 'minor' })
  await sleep(config.gapMs / 2)
}

const events: WrittenEvent[] = []
const gcPauses: GcPause[] = []
const gcObserver = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const start = performance.timeOrigin + entry.startTime
    gcPauses.push({ start, end: start + entry.duration })
  }
})
gcObserver.observe({ entryTypes: ['gc'] })
let serial = 0
const variants = {
  raw: async () => {
    const key = `${config.rawPrefix}put/${serial++}`
    const value = JSON.stringify(sampleRecord(config.role, `raw-${serial}`))
    let t0 = now()
    await raw.put(key).value(value).exec()
    events.push({ variant: 'raw', op: 'add', key, t0, ack: now() })
    await gap()
    t0 = now()
    await raw.delete().key(key).exec()
    events.push({ variant: 'raw', op: 'remove', key, t0, ack: now() })
  },
  'raw-lease': async () => {
    const key = `${config.rawPrefix}lease/${serial++}`
    const value = JSON.stringify(sampleRecord(config.role, `lease-${serial}`))
    let t0 = now()
    const lease = raw.lease(config.ttlSeconds, { autoKeepAlive: false })
    await lease.grant()
    await lease.put(key).value(value).exec()
    events.push({ variant: 'raw-lease', op: 'add', key, t0, ack: now() })
    await gap()
    t0 = now()
    await lease.revoke()
    events.push({ variant: 'raw-lease', op: 'remove', key, t0, ack: now() })
  },
  framework: async () => {
    const id = `prop-${(serial++).toString(36).padStart(6, '0')}`
    const key = instanceKey(config.namespace, config.role, id)
    const registration = new Registration({
      client: framework,
      endpoints: [config.endpoint],
      key,
      ttlSeconds: config.ttlSeconds,
      loadRefreshMs: 5_000,
      record: () => sampleRecord(config.role, id),
      log,
    })
    const registered = new Promise<void>((resolve) => registration.once('registered', resolve))
    // Untimed, as in the runtime's boot: the lease is granted while the server starts listening.
    await registration.prepare()
    let t0 = now()
    registration.start()
    await registered
    events.push({ variant: 'framework', op: 'add', key, t0, ack: now() })
    await gap()
    t0 = now()
    await registration.stop()
    events.push({ variant: 'framework', op: 'remove', key, t0, ack: now() })
  },
}
for (let round = 0; round < config.rounds; round++) {
  for (const produce of Object.values(variants)) {
    await produce()
    await gap()
  }
}
gcObserver.disconnect()
// Disconnect only once the message is written: a large one is otherwise cut off.
await new Promise<void>((resolve) =>
  process.send?.({ type: 'events', events, gcPauses }, () => resolve()),
)
raw.close()
framework.close()
process.disconnect?.()
