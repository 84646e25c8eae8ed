/**
 * propagation: how long until a watcher in another process sees a phone book change.
 *   baseline  — raw etcd3: `put` → watch `put` event, `delete` → watch `delete` event
 *   also      — raw etcd3 on a lease: grant + put → event, revoke → event (a registration's two
 *               writes, both timed: the reference for a lease not granted ahead)
 *   framework — `Registration.start()` → an `EtcdResolver` emits `add`, after an untimed
 *               `prepare()` (the lease grant the runtime does while its server boots): what is
 *               timed is ready to serve → visible, one etcd write; `Registration.stop()` →
 *               `remove`; kill -9 of the process holding registrations → `remove` (≈ TTL)
 * The writer is a separate process (bench/propagation-writer.ts); both read the same clock
 * (`performance.timeOrigin + performance.now()`), and the offset between the two processes is
 * measured over IPC and reported. Events are produced one at a time with a gap, the variants
 * taking turns event by event (1200 of each: a p99 is then the 12th slowest, not the 2nd of 200,
 * which swung by several ms between runs). Kill -9: processes holding 10 registrations each (TTL 2 s, the minimum)
 * are killed at once, several rounds.
 */
import { loadavg } from 'node:os'
import { Etcd3, type IKeyValue } from 'etcd3'
import { EtcdServer } from '../framework/cli/local-etcd.js'
import { EtcdResolver } from '../framework/discovery/etcd-resolver.js'
import { createEtcdClient } from '../framework/registry/etcd-client.js'
import { markdownTable, type SummaryRow, writeResult } from './harness.js'
import type { GcPause, WriterConfig, WrittenEvent } from './propagation-writer.js'
import type { RegistrantsConfig } from './registrants.js'
import {
  BenchChild,
  benchLog,
  clockOffset,
  fixed,
  now,
  type Percentiles,
  percentiles,
  sleep,
} from './support.js'

const NAMESPACE = 'bench-prop'
const RAW_PREFIX = '/bench-prop-raw/'
const ROUNDS = 1200 // events of each kind per variant
const GAP_MS = 10
const PROP_TTL = 5
const KILL_TTL = 2
const KILL_ROUNDS = 5
const KILL_PROCESSES = 4
const KILL_PER_PROCESS = 10 // 5 rounds × 4 processes × 10 = 200 kill samples
const GOAL_MARGIN_MS = 2

type Variant = WrittenEvent['variant'] | 'framework kill -9'

interface Row {
  variant: Variant
  op: string
  latency: Percentiles
  ack: Percentiles | undefined
  /** Framework events as a plain etcd3 watch in the same process saw them. */
  plainWatch?: Percentiles | undefined
  missed: number
  /** Events during which the writer paused for GC: of all, and of those at or above the p99. */
  writerGc?: { all: number; tail: number; tailOf: number } | undefined
}

/** How many of `timed` (start, latency) overlap one of `pauses`: in all, and at or above `p99`. */
function gcOverlaps(
  timed: readonly { t0: number; latency: number }[],
  pauses: readonly GcPause[],
  p99: number,
): { all: number; tail: number; tailOf: number } {
  const hit = ({ t0, latency }: { t0: number; latency: number }) =>
    pauses.some((pause) => pause.end > t0 && pause.start < t0 + latency)
  const tail = timed.filter((event) => event.latency >= p99)
  return {
    all: timed.filter(hit).length,
    tail: tail.filter(hit).length,
    tailOf: tail.length,
  }
}

export async function run(): Promise<{ table: string; summary: SummaryRow[] }> {
  const started = Date.now()
  const etcd = await EtcdServer.start()
  const log = benchLog()
  const rawWatchClient = new Etcd3({ hosts: [etcd.endpoint] })
  const resolverClient = createEtcdClient([etcd.endpoint])
  const seen = new Map<string, number>()
  const rawSeen = new Map<string, number>()
  const children: BenchChild[] = []
  const resolvers: EtcdResolver[] = []
  try {
    // Baseline watcher: a plain etcd3 watch on the raw prefix.
    const rawWatcher = await rawWatchClient.watch().prefix(RAW_PREFIX).create()
    rawWatcher.on('put', (kv: IKeyValue) => seen.set(`add ${kv.key.toString()}`, now()))
    rawWatcher.on('delete', (kv: IKeyValue) => seen.set(`remove ${kv.key.toString()}`, now()))
    // The same plain watch on the framework's keys: splits the framework's latency into the
    // writer's side (until etcd emits the event) and the resolver's side (after).
    const rawFrameworkWatcher = await rawWatchClient.watch().prefix(`/${NAMESPACE}/`).create()
    rawFrameworkWatcher.on('put', (kv: IKeyValue) => {
      if (!rawSeen.has(`add ${kv.key.toString()}`)) rawSeen.set(`add ${kv.key.toString()}`, now())
    })
    rawFrameworkWatcher.on('delete', (kv: IKeyValue) =>
      rawSeen.set(`remove ${kv.key.toString()}`, now()),
    )
    // Framework watcher: the resolver `ctx.deps` uses.
    const resolver = new EtcdResolver(resolverClient, 'prop', NAMESPACE, log)
    resolvers.push(resolver)
    resolver.subscribe((update) => {
      if (update.op !== 'update') seen.set(`${update.op} ${update.endpoint.key}`, now())
    })
    await resolver.whenListed(10_000)

    const writerConfig: WriterConfig = {
      endpoint: etcd.endpoint,
      namespace: NAMESPACE,
      rawPrefix: RAW_PREFIX,
      role: 'prop',
      rounds: ROUNDS,
      gapMs: GAP_MS,
      ttlSeconds: PROP_TTL,
    }
    const writer = new BenchChild('propagation-writer.ts', {
      args: [JSON.stringify(writerConfig)],
      nodeArgs: ['--expose-gc'],
    })
    children.push(writer)
    await writer.next('ready', 30_000)
    const clock = await clockOffset(writer)
    writer.send({ type: 'go' })
    const { events, gcPauses } = (await writer.next('events', 300_000)) as unknown as {
      events: WrittenEvent[]
      gcPauses: GcPause[]
    }
    await sleep(500)
    await rawWatcher.cancel()
    await rawFrameworkWatcher.cancel()

    const rows: Row[] = []
    for (const variant of ['raw', 'raw-lease', 'framework'] as const) {
      for (const op of ['add', 'remove'] as const) {
        const mine = events.filter((event) => event.variant === variant && event.op === op)
        const latencies: number[] = []
        const timed: { t0: number; latency: number }[] = []
        const etcdSide: number[] = []
        for (const event of mine) {
          const at = seen.get(`${op} ${event.key}`)
          if (at !== undefined) {
            latencies.push(at - event.t0)
            timed.push({ t0: event.t0, latency: at - event.t0 })
          }
          const rawAt = rawSeen.get(`${op} ${event.key}`)
          if (rawAt !== undefined) etcdSide.push(rawAt - event.t0)
        }
        const latency = percentiles(latencies)
        rows.push({
          variant,
          op,
          latency,
          ack: percentiles(mine.map((event) => event.ack - event.t0)),
          plainWatch: etcdSide.length > 0 ? percentiles(etcdSide) : undefined,
          missed: mine.length - latencies.length,
          writerGc: gcOverlaps(timed, gcPauses, latency.p99),
        })
      }
    }

    // kill -9: processes holding registrations on a short TTL, killed at once; the resolver
    // drops each instance when etcd expires its lease.
    const killResolver = new EtcdResolver(resolverClient, 'propkill', NAMESPACE, log)
    resolvers.push(killResolver)
    const removedAt = new Map<string, number>()
    killResolver.subscribe((update) => {
      if (update.op === 'remove') removedAt.set(update.endpoint.key, now())
    })
    await killResolver.whenListed(10_000)
    const killLatencies: number[] = []
    let killMissed = 0
    for (let round = 0; round < KILL_ROUNDS; round++) {
      const holders = Array.from({ length: KILL_PROCESSES }, (_, p) => {
        const config: RegistrantsConfig = {
          endpoint: etcd.endpoint,
          namespace: NAMESPACE,
          roles: ['propkill'],
          count: KILL_PER_PROCESS,
          name: `r${round}p${p}`,
          ttlSeconds: KILL_TTL,
          loadRefreshMs: 5_000,
          concurrency: KILL_PER_PROCESS,
        }
        const child = new BenchChild('registrants.ts', { args: [JSON.stringify(config)] })
        children.push(child)
        return child
      })
      const keysOf = new Map<BenchChild, string[]>()
      for (const holder of holders) {
        keysOf.set(holder, (await holder.next('registered', 30_000)).keys as string[])
      }
      const all = [...keysOf.values()].flat()
      const deadline = Date.now() + 10_000
      while (!all.every((key) => killResolver.endpoints.some((e) => e.key === key))) {
        if (Date.now() > deadline) throw new Error('kill -9 round: resolver did not see every key')
        await sleep(20)
      }
      // Let keepalives reach their steady rhythm (the phase against the kill is then arbitrary).
      await sleep(1_000)
      const killedAt = new Map<BenchChild, number>()
      for (const holder of holders) {
        killedAt.set(holder, now())
        holder.child.kill('SIGKILL')
      }
      const expiry = Date.now() + KILL_TTL * 3_000
      while (!all.every((key) => removedAt.has(key)) && Date.now() < expiry) await sleep(20)
      for (const holder of holders) {
        await holder.exited
        for (const key of keysOf.get(holder)!) {
          const at = removedAt.get(key)
          if (at === undefined) killMissed++
          else killLatencies.push(at - killedAt.get(holder)!)
        }
      }
    }
    rows.push({
      variant: 'framework kill -9',
      op: 'remove',
      latency: percentiles(killLatencies),
      ack: undefined,
      missed: killMissed,
    })

    const find = (variant: Variant, op: string) =>
      rows.find((row) => row.variant === variant && row.op === op)!
    const label: Record<Variant, Record<string, string>> = {
      raw: { add: 'raw etcd3 put → watch event', remove: 'raw etcd3 delete → watch event' },
      'raw-lease': {
        add: 'raw etcd3 lease grant + put → watch event',
        remove: 'raw etcd3 lease revoke → watch event',
      },
      framework: {
        add: 'register (Registration.start, lease granted ahead) → resolver add',
        remove: 'graceful stop (Registration.stop) → resolver remove',
      },
      'framework kill -9': {
        remove: `kill -9 → resolver remove (TTL ${KILL_TTL} s, ${KILL_PROCESSES}×${KILL_PER_PROCESS} per round)`,
      },
    }
    const table = markdownTable(
      [
        'event',
        'n',
        'p50 ms',
        'p99 ms',
        'max ms',
        'writer ack p50 ms',
        'plain watch of same keys p50 / p99 ms',
        'missed',
        'writer GC inside: all / at ≥ p99',
        'p99 − raw p99',
      ],
      rows.map((row) => {
        const raw = find('raw', row.op)
        return [
          label[row.variant][row.op]!,
          row.latency.n,
          fixed(row.latency.p50),
          fixed(row.latency.p99),
          fixed(row.latency.max),
          row.ack ? fixed(row.ack.p50) : '—',
          row.plainWatch ? `${fixed(row.plainWatch.p50)} / ${fixed(row.plainWatch.p99)}` : '—',
          row.missed,
          row.writerGc
            ? `${row.writerGc.all} / ${row.writerGc.tail} of ${row.writerGc.tailOf}`
            : '—',
          row.variant === 'framework kill -9'
            ? `≈ ${fixed(row.latency.p50 / (KILL_TTL * 1000))} × TTL (p50)`
            : row.variant === 'raw'
              ? '—'
              : `${row.latency.p99 - raw.latency.p99 >= 0 ? '+' : ''}${fixed(row.latency.p99 - raw.latency.p99)} ms`,
        ]
      }),
    )
    const summary: SummaryRow[] = (['add', 'remove'] as const).map((op) => {
      const raw = find('raw', op).latency
      const framework = find('framework', op).latency
      const met = framework.p99 <= raw.p99 + GOAL_MARGIN_MS
      return {
        benchmark: 'propagation',
        figure: `${op === 'add' ? 'register (ready to serve, lease granted ahead)' : 'deregister'} → resolver, p99 (p50)`,
        framework: `${fixed(framework.p99)} ms (${fixed(framework.p50)})`,
        baseline: `raw etcd ${op === 'add' ? 'put' : 'delete'} → watch ${fixed(raw.p99)} ms (${fixed(raw.p50)})`,
        ratio: `${fixed(framework.p99 / raw.p99)}× (${fixed(framework.p50 / raw.p50)}×)`,
        goal: `p99 ≤ raw + ${GOAL_MARGIN_MS} ms: ${met ? 'met' : 'missed'}`,
      }
    })
    const kill = find('framework kill -9', 'remove').latency
    summary.push({
      benchmark: 'propagation',
      figure: 'kill -9 → resolver drops it, p99 (p50)',
      framework: `${fixed(kill.p99)} ms (${fixed(kill.p50)})`,
      baseline: `TTL ${KILL_TTL * 1000} ms`,
      ratio: `${fixed(kill.p99 / (KILL_TTL * 1000))}× TTL`,
      goal: 'no goal (≈ TTL)',
    })
    writeResult('propagation', {
      loadAverage: loadavg(),
      settings: {
        rounds: ROUNDS,
        gapMs: GAP_MS,
        registrationTtlSeconds: PROP_TTL,
        killTtlSeconds: KILL_TTL,
        killRounds: KILL_ROUNDS,
        killProcesses: KILL_PROCESSES,
        killPerProcess: KILL_PER_PROCESS,
      },
      clock,
      rows,
      summary,
      seconds: Math.round((Date.now() - started) / 1000),
    })
    return {
      table: `${table}\n\nwriter ↔ watcher clock offset ${fixed(clock.offsetMs, 3)} ms (± ${fixed(clock.rttMs / 2, 3)} ms), not subtracted`,
      summary,
    }
  } finally {
    for (const resolver of resolvers) await resolver.close()
    for (const child of children) await child.kill('SIGKILL')
    rawWatchClient.close()
    resolverClient.close()
    await etcd.dispose()
  }
}
