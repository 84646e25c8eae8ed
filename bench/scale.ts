/**
 * scale: 1,000 registered instances across 50 roles, held by 4 processes (250 framework
 * `Registration`s each, default TTL 5 s and load refresh 5 s, real load figures), and 20
 * watching clients (`connect()` with all 50 roles as dependencies, in one process) against one
 * etcd. Measures:
 *   - etcd writes/s in steady state (store revision delta over a window; raft proposals and puts
 *     from etcd's /metrics as a cross-check)
 *     against the goal ≤ instances / 5 s; keepalive messages/s and keepalive streams open
 *   - client heap per instance record held (clients started before any instance registers),
 *     and the clients' CPU while receiving the load refresh updates
 *   - the time to relist one role, from an idle process: plain etcd3 range (baseline), range +
 *     watch, framework resolver
 */
import { loadavg } from 'node:os'
import { Etcd3 } from 'etcd3'
import { EtcdServer } from '../framework/cli/local-etcd.js'
import { EtcdResolver } from '../framework/discovery/etcd-resolver.js'
import { createEtcdClient } from '../framework/registry/etcd-client.js'
import { rolePrefix } from '../framework/registry/record.js'
import { markdownTable, type SummaryRow, writeResult } from './harness.js'
import type { RegistrantsConfig } from './registrants.js'
import type { WatchersConfig } from './scale-watchers.js'
import { BenchChild, benchLog, EtcdMetrics, fixed, now, percentiles, sleep } from './support.js'

const NAMESPACE = 'bench-scale'
const ROLES = Array.from({ length: 50 }, (_, i) => `role-${i.toString().padStart(2, '0')}`)
const INSTANCES = 1_000
const PROCESSES = 4
const CLIENTS = 20
const TTL_SECONDS = 5 // the runtime's default
const LOAD_REFRESH_MS = 5_000 // the runtime's default
const SETTLE_MS = 6_000
const WINDOW_MS = 15_000
const RELIST_ROUNDS = 2
const WRITES_GOAL_PER_S = INSTANCES / 5

export async function run(): Promise<{ table: string; summary: SummaryRow[] }> {
  const started = Date.now()
  const etcd = await EtcdServer.start()
  const children: BenchChild[] = []
  try {
    // The clients first, on the empty namespace: their heap then grows by the records alone.
    const watchersConfig: WatchersConfig = {
      endpoint: etcd.endpoint,
      namespace: NAMESPACE,
      roles: ROLES,
      clients: CLIENTS,
      perRole: INSTANCES / ROLES.length,
    }
    const watchers = new BenchChild('scale-watchers.ts', {
      args: [JSON.stringify(watchersConfig)],
      nodeArgs: ['--expose-gc'],
    })
    children.push(watchers)
    await watchers.next('ready', 180_000)
    const ask = async (type: string, answer: string, timeoutMs = 30_000) => {
      const after = watchers.messages.length
      watchers.send({ type })
      return watchers.next(answer, timeoutMs, after)
    }

    const registrationStarted = now()
    const registrants = Array.from({ length: PROCESSES }, (_, p) => {
      const config: RegistrantsConfig = {
        endpoint: etcd.endpoint,
        namespace: NAMESPACE,
        // Round-robin over the roles: each role gets 5 instances from every process.
        roles: ROLES,
        count: INSTANCES / PROCESSES,
        name: `p${p}`,
        ttlSeconds: TTL_SECONDS,
        loadRefreshMs: LOAD_REFRESH_MS,
        concurrency: 25,
      }
      const child = new BenchChild('registrants.ts', { args: [JSON.stringify(config)] })
      children.push(child)
      return child
    })
    const registered = await Promise.all(registrants.map((r) => r.next('registered', 180_000)))
    const registerAllMs = now() - registrationStarted
    const settleFrom = Date.now()
    const keys = registered.flatMap((message) => message.keys as string[])
    if (keys.length !== INSTANCES) throw new Error(`registrants hold ${keys.length} instances`)
    const expectedHeld = CLIENTS * INSTANCES
    let listing = await ask('count', 'updates')
    const listingDeadline = Date.now() + 60_000
    while (listing.held !== expectedHeld && Date.now() < listingDeadline) {
      await sleep(200)
      listing = await ask('count', 'updates')
    }
    // Recorded (and shown) rather than thrown: a shortfall is a finding.
    const shortAfterRegistration = listing.short as unknown[]

    // Steady state: every registration has been through at least one load refresh period.
    await sleep(Math.max(0, SETTLE_MS - (Date.now() - settleFrom)))
    const memory = await ask('memory', 'memory')
    const before = await ask('count', 'updates')
    const probe = new Etcd3({ hosts: [etcd.endpoint] })
    const revision = async () =>
      Number((await probe.get('/bench-scale-probe').exec()).header.revision)
    const r0 = await revision()
    const m0 = await EtcdMetrics.scrape(etcd.endpoint)
    const windowStart = now()
    await sleep(WINDOW_MS)
    const m1 = await EtcdMetrics.scrape(etcd.endpoint)
    const r1 = await revision()
    probe.close()
    const windowS = (now() - windowStart) / 1000
    const after = await ask('count', 'updates')
    const cpuOf = (message: typeof before) => {
      const cpu = message.cpu as NodeJS.CpuUsage
      return (cpu.user + cpu.system) / 1000
    }
    const watchersCores =
      (cpuOf(after) - cpuOf(before)) / ((after.at as number) - (before.at as number))
    type Updates = { add: number; update: number; remove: number }
    const u0 = before.updates as Updates
    const u1 = after.updates as Updates
    const updates0 = u0.add + u0.update + u0.remove
    const updates1 = u1.add + u1.update + u1.remove
    const windowUpdates = {
      add: u1.add - u0.add,
      update: u1.update - u0.update,
      remove: u1.remove - u0.remove,
      relists: (after.relists as number) - (before.relists as number),
    }

    const rate = (name: string, ...labels: string[]) =>
      (m1.sum(name, ...labels) - m0.sum(name, ...labels)) / windowS
    const keepalive = ['grpc_method="LeaseKeepAlive"']
    const watch = ['grpc_method="Watch"']
    const openStreams = (labels: string[]) =>
      m1.sum('grpc_server_started_total', ...labels) -
      m1.sum('grpc_server_handled_total', ...labels)
    const proposalsPerS = rate('etcd_server_proposals_committed_total')
    // Every write transaction (put, delete, txn with a put) advances the revision by exactly one.
    const revisionsPerS = (r1 - r0) / windowS
    const putsPerS = rate('etcd_mvcc_put_total')
    const keepalivesPerS = rate('grpc_server_msg_received_total', ...keepalive)
    const keepaliveStreams = openStreams(keepalive)
    const watchStreams = openStreams(watch)
    const watchMessagesPerS = rate('grpc_server_msg_sent_total', ...watch)
    const updatesPerS = (updates1 - updates0) / windowS

    const relisted = await relistTimes(etcd.endpoint, INSTANCES / ROLES.length)
    const range = percentiles(relisted.range)
    const rangeWatch = percentiles(relisted.rangeWatch)
    const resolver = percentiles(relisted.resolver)

    const bytesPerRecord = memory.bytesPerRecord as number
    const writesMet = revisionsPerS <= WRITES_GOAL_PER_S
    const metrics: [string, string, string][] = [
      [
        'instances registered (4 processes, 250 each)',
        `${INSTANCES} over ${ROLES.length} roles`,
        `${fixed(registerAllMs / 1000, 1)} s to register all`,
      ],
      [
        'etcd writes/s, steady (store revisions: one per write txn)',
        fixed(revisionsPerS, 1),
        `goal ≤ ${WRITES_GOAL_PER_S}/s (instances / 5 s): ${writesMet ? 'met' : 'missed'}; ${fixed((revisionsPerS * LOAD_REFRESH_MS) / 1000 / INSTANCES)} per instance per refresh period`,
      ],
      [
        '  cross-check: raft proposals committed/s; mvcc puts/s',
        `${fixed(proposalsPerS, 1)}; ${fixed(putsPerS, 1)}`,
        "etcd's /metrics counters over the same window",
      ],
      [
        'keepalive messages/s (not raft writes in etcd 3.4)',
        fixed(keepalivesPerS, 1),
        `${fixed(keepalivesPerS / INSTANCES, 3)} per instance (TTL/3 = ${fixed(TTL_SECONDS / 3)} s)`,
      ],
      [
        'keepalive streams open at etcd',
        String(keepaliveStreams),
        `${fixed(keepaliveStreams / INSTANCES)} per instance (etcd3 opens one per lease)`,
      ],
      [
        'watch streams open at etcd',
        String(watchStreams),
        `one per etcd client: ${CLIENTS} clients + ${PROCESSES} registrant processes (own-key watches)`,
      ],
      [
        'watch messages sent/s by etcd',
        fixed(watchMessagesPerS, 1),
        `resolver events/s in the ${CLIENTS} clients: ${fixed(updatesPerS, 1)} (${windowUpdates.relists} relists after watch reconnects in the window)`,
      ],
      [
        `CPU of the ${CLIENTS} clients' process while receiving them`,
        `${fixed(watchersCores * 100, 0)}% of a core`,
        `${fixed((watchersCores * 1e6) / Math.max(1, updatesPerS), 1)} µs per update received`,
      ],
      [
        'client heap per instance record',
        `${Math.round(bytesPerRecord)} B`,
        `${CLIENTS} clients × ${ROLES.length} roles hold ${memory.held} of ${expectedHeld} records; ${Math.round(memory.bytesPerResolver as number)} B per resolver without records`,
      ],
      [
        'relist one role (20 instances), from an idle process: plain etcd3 range (baseline)',
        `p50 ${fixed(range.p50)} / p99 ${fixed(range.p99)} ms`,
        `n=${range.n}`,
      ],
      [
        'relist one role: plain range + parse + watch connected',
        `p50 ${fixed(rangeWatch.p50)} / p99 ${fixed(rangeWatch.p99)} ms`,
        `${fixed(rangeWatch.p50 / range.p50)}× range (p50)`,
      ],
      [
        'relist one role: framework resolver (list, zod, watch) until listed',
        `p50 ${fixed(resolver.p50)} / p99 ${fixed(resolver.p99)} ms`,
        `${fixed(resolver.p50 / range.p50)}× range, ${fixed(resolver.p50 / rangeWatch.p50)}× range + watch (p50)`,
      ],
    ]
    const table = markdownTable(['metric', 'value', 'note'], metrics)
    const summary: SummaryRow[] = [
      {
        benchmark: 'scale',
        figure: `etcd writes/s, ${INSTANCES} instances, default settings`,
        framework: `${fixed(revisionsPerS, 1)} (proposals ${fixed(proposalsPerS, 1)})`,
        baseline: `budget ${WRITES_GOAL_PER_S}/s`,
        ratio: `${fixed(revisionsPerS / WRITES_GOAL_PER_S)}×`,
        goal: `≤ instances / 5 s: ${writesMet ? 'met' : 'missed'}`,
      },
      {
        benchmark: 'scale',
        figure: 'relist one role, p50',
        framework: `resolver ${fixed(resolver.p50)} ms`,
        baseline: `etcd3 range ${fixed(range.p50)} ms; range + watch ${fixed(rangeWatch.p50)} ms`,
        ratio: `${fixed(resolver.p50 / range.p50)}×; ${fixed(resolver.p50 / rangeWatch.p50)}×`,
        goal: 'no goal',
      },
      {
        benchmark: 'scale',
        figure: 'client heap per instance record; keepalive streams',
        framework: `${Math.round(bytesPerRecord)} B; ${keepaliveStreams} streams`,
        baseline: `${INSTANCES} leases`,
        ratio: '–',
        goal: 'no goal',
      },
    ]
    writeResult('scale', {
      loadAverage: loadavg(),
      settings: {
        instances: INSTANCES,
        roles: ROLES.length,
        registrantProcesses: PROCESSES,
        clients: CLIENTS,
        ttlSeconds: TTL_SECONDS,
        loadRefreshMs: LOAD_REFRESH_MS,
        windowMs: WINDOW_MS,
        relistRounds: RELIST_ROUNDS,
      },
      registerAllMs: Math.round(registerAllMs),
      shortAfterRegistration,
      shortAtEnd: (await ask('count', 'updates')).short,
      steady: {
        windowSeconds: windowS,
        revisionsPerS,
        proposalsPerS,
        putsPerS,
        keepalivesPerS,
        keepaliveStreams,
        watchStreams,
        watchMessagesPerS,
        resolverUpdatesPerS: updatesPerS,
        resolverEventsInWindow: windowUpdates,
        watchersProcessCores: watchersCores,
      },
      memory,
      relist: { rounds: RELIST_ROUNDS, range, rangeWatch, resolver, wrong: relisted.wrong },
      summary,
      seconds: Math.round((Date.now() - started) / 1000),
    })
    return { table, summary }
  } finally {
    for (const child of children) await child.kill('SIGKILL')
    await etcd.dispose()
  }
}

/**
 * Time to list one role, in this (otherwise idle) process while the registrants and the 20
 * clients keep running: plain etcd3 range (baseline); range + JSON.parse + a watch from the next
 * revision until connected (the same etcd work as a resolver); a fresh framework resolver until
 * `whenListed`. Interleaved per role.
 */
async function relistTimes(endpoint: string, perRole: number) {
  const plain = new Etcd3({ hosts: [endpoint] })
  const framework = createEtcdClient([endpoint])
  const log = benchLog()
  const range: number[] = []
  const rangeWatch: number[] = []
  const resolver: number[] = []
  let wrong = 0
  try {
    await plain.get('/warmup').string()
    await framework.get('/warmup').string()
    for (let round = 0; round < RELIST_ROUNDS; round++) {
      for (const role of ROLES) {
        const prefix = rolePrefix(NAMESPACE, role)
        let t0 = now()
        const listed = await plain.getAll().prefix(prefix).exec()
        range.push(now() - t0)
        if (listed.kvs.length !== perRole) wrong++

        t0 = now()
        const again = await plain.getAll().prefix(prefix).exec()
        for (const kv of again.kvs) JSON.parse(kv.value.toString())
        const watcher = await plain
          .watch()
          .prefix(prefix)
          .startRevision((BigInt(again.header.revision) + 1n).toString())
          .create()
        rangeWatch.push(now() - t0)
        await watcher.cancel()

        t0 = now()
        const fresh = new EtcdResolver(framework, role, NAMESPACE, log)
        await fresh.whenListed(10_000)
        resolver.push(now() - t0)
        if (fresh.endpoints.length !== perRole) wrong++
        await fresh.close()
      }
    }
  } finally {
    plain.close()
    framework.close()
  }
  return { range, rangeWatch, resolver, wrong }
}
