import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { servicesPrefix } from '../../framework/registry/record.js'
import { CallLoop } from '../support/call-loop.js'
import { whenNoLongerTried } from '../support/ejections.js'
import { type EtcdMember, useEtcdCluster } from '../support/etcd-cluster.js'
import { type FaultRecord, faultRow } from '../support/fault-summary.js'
import { countBy, type Started, startExampleApp, startRegistered } from '../support/spawned-app.js'
import { waitFor } from '../support/wait.js'

/**
 * The phone book on a real 3-member etcd cluster: every instance is given all three client URLs.
 * kill -9 of the raft leader while an api relays calls to three caches must cost no call, no
 * registration, and no watch (a cache started afterwards gets traffic); the killed member, restarted
 * from its data dir, rejoins and serves the data written meanwhile.
 */

const TTL = 2
/** Calls each loop makes at least. */
const MIN_CALLS = 2_000
/** Generous bound on the time registrations may take to be readable again after a fault. */
const RECOVER_BOUND_MS = 20_000
/** Generous bound on the time a cache started after a fault may take to get its first call. */
const TRAFFIC_BOUND_MS = 15_000
/** Margin for the api's watch to deliver a delete that the test's own read has seen. */
const WATCH_MARGIN_MS = 2_000

const fixture = useEtcdCluster('etcd-cluster', TTL)
const loops: CallLoop[] = []
const monitors: RegistrationMonitor[] = []

const spawn = (role: string, namespace: string) => fixture.spawn(role, namespace)

function start(role: string, namespace: string): Promise<Started> {
  return startRegistered(spawn, role, namespace)
}

/** Three caches and an api depending on them, in a fresh namespace, all on the whole cluster. */
function startApp() {
  return startExampleApp(spawn, fixture.namespace())
}

function startLoop(apiUrl: string): CallLoop {
  // Far more calls than needed and a time bound: each phase stops its loop when it is done.
  const loop = new CallLoop(apiUrl, 100_000, { concurrency: 6, pauseMs: 2, maxMs: 90_000 })
  loops.push(loop)
  return loop
}

/** Phone book keys under the namespace, read through one member. */
async function keysThrough(
  member: EtcdMember,
  namespace: string,
  serializable = false,
): Promise<Set<string>> {
  const kvs = await fixture.cluster.range(member, servicesPrefix(namespace), {
    prefix: true,
    serializable,
  })
  return new Set(kvs.map((kv) => kv.key))
}

/**
 * Polls the phone book every 50 ms through one member (serializable reads: they answer while the
 * cluster has no leader) and remembers every expected key seen missing, and whether it came back.
 * A poll that cannot read is kept as a failure: `check()` says what the monitor missed.
 */
class RegistrationMonitor {
  readonly lost = new Set<string>()
  readonly unreadable: string[] = []
  /** Polls that read the phone book, and when the last one did. */
  reads = 0
  lastReadAt = 0
  /** Per key: when it was seen missing (first poll) and present again (first poll), epoch ms. */
  readonly gaps: { key: string; from: number; to?: number }[] = []
  /** Per key: the lease ids it was seen on, in order. */
  readonly leases = new Map<string, string[]>()
  readonly #done: Promise<void>
  #stopped = false

  constructor(
    member: EtcdMember,
    namespace: string,
    readonly expected: readonly string[],
    maxMs = 60_000,
  ) {
    const deadline = Date.now() + maxMs
    this.#done = (async () => {
      while (!this.#stopped && Date.now() < deadline) {
        try {
          const kvs = await fixture.cluster.range(member, servicesPrefix(namespace), {
            prefix: true,
            serializable: true,
          })
          const now = Date.now()
          this.reads++
          this.lastReadAt = now
          for (const key of this.expected) {
            const kv = kvs.find((candidate) => candidate.key === key)
            const open = this.gaps.find((gap) => gap.key === key && gap.to === undefined)
            if (!kv) {
              this.lost.add(key)
              if (!open) this.gaps.push({ key, from: now })
              continue
            }
            if (open) open.to = now
            const seen = this.leases.get(key) ?? []
            if (seen.at(-1) !== kv.lease) seen.push(kv.lease)
            this.leases.set(key, seen)
          }
        } catch (err) {
          this.unreadable.push(String(err))
        }
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    })()
    monitors.push(this)
  }

  async stop(): Promise<void> {
    this.#stopped = true
    await this.#done
  }

  /** The monitor saw the whole fault: every poll read, the last one after `until`. */
  check(until: number): void {
    expect(this.unreadable.slice(0, 5), 'polls of the phone book that could not read').toEqual([])
    expect(this.reads).toBeGreaterThan(0)
    expect(this.lastReadAt).toBeGreaterThanOrEqual(until)
  }

  /** One line per gap, with the instance's registration log lines, times relative to `t0`. */
  describeGaps(t0: number, instances: readonly Started[]): string {
    return this.gaps
      .map((gap) => {
        const owner = instances.find((started) => started.key === gap.key)
        const events = (owner?.instance.lines ?? [])
          .filter((line) => /regist|keepalive|lease/.test(line.msg) && (line.time as number) >= t0)
          .map((line) =>
            `+${(line.time as number) - t0}ms ${line.msg} ${line.reason ?? line.err ?? ''}`.trim(),
          )
        return (
          `${gap.key} missing from +${gap.from - t0} ms to ${gap.to === undefined ? 'the end' : `+${gap.to - t0} ms`}` +
          ` (leases seen ${(this.leases.get(gap.key) ?? []).join(' -> ')}); instance log: ${events.join(' | ')}`
        )
      })
      .join('\n')
  }
}

/**
 * The members whose client port `pid` holds an established TCP connection to (Linux /proc), to
 * say in the summary which members the api's etcd client was using. Empty when unknown.
 */
function membersConnectedFrom(pid: number): string[] {
  try {
    const inodes = new Set<string>()
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      const link = readlinkSync(`/proc/${pid}/fd/${fd}`, { encoding: 'utf8' })
      const match = /^socket:\[(\d+)\]$/.exec(link)
      if (match) inodes.add(match[1]!)
    }
    const ports = new Set<number>()
    for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      // sl local_address rem_address st ... inode (field 9); 01 = ESTABLISHED
      if (fields.length < 10 || fields[3] !== '01' || !inodes.has(fields[9]!)) continue
      ports.add(Number.parseInt(fields[2]!.split(':')[1]!, 16))
    }
    return fixture.cluster.members.filter((m) => ports.has(m.clientPort)).map((m) => m.name)
  } catch {
    return []
  }
}

/** Starts a row of the suite's fault summary, named as a fault of this cluster. */
function summary(fault: string): FaultRecord {
  return faultRow(`3-member etcd cluster, ${fault}`)
}

/** Lines in which the api's resolver says its watch was re-established (and it listed again). */
function watchRelists(api: Started): number {
  return api.instance.count('watch reconnected') + api.instance.count('watch failed')
}

/**
 * kill -9 one member (the leader, or a given one) under load: an agreed leader among the
 * survivors, 0 failed calls, every key still there after more than a TTL, and a cache started
 * afterwards gets traffic (the api's watch still works). Returns the killed member.
 */
async function killUnderLoad(
  app: Awaited<ReturnType<typeof startApp>>,
  which: 'leader' | EtcdMember,
  label: string,
): Promise<{ killed: EtcdMember; fresh: Started; relists: number }> {
  const { namespace, api, all } = app
  const loop = startLoop(api.url)
  await loop.reached(300)
  const leaderBefore = await fixture.cluster.leader()
  const killed = which === 'leader' ? leaderBefore : which
  const row = summary(
    `${label}: kill -9 ${killed === leaderBefore ? 'leader' : 'follower'} ${killed.name}`,
  )
  const survivor = fixture.cluster.running().find((member) => member !== killed)!
  const expected = all.map((started) => started.key)
  const monitor = new RegistrationMonitor(survivor, namespace, expected)
  const apiConnections = membersConnectedFrom(api.instance.pid)
  const lostLogsBefore = all.map((started) => started.instance.count('registration lost'))
  const relistsBefore = watchRelists(api)
  const callsAtKill = loop.samples.length

  const killedAt = Date.now()
  await fixture.cluster.kill(killed)
  const { leader, ms: electionMs } = await fixture.cluster.waitForLeader({
    not: killed,
    timeoutMs: 15_000,
  })
  const electedAt = Date.now()
  // Every instance readable through a survivor (a linearizable read: it needs the leader).
  await waitFor(
    'every instance registered, read through a surviving member',
    async () => {
      const keys = await keysThrough(survivor, namespace)
      return expected.every((key) => keys.has(key))
    },
    RECOVER_BOUND_MS,
    50,
  )
  const recoverMs = Date.now() - killedAt
  const callsInElection = loop.between(killedAt, electedAt).length

  // A cache started now registers through a survivor, and the api's watch must see it.
  const fresh = await start('cache', namespace)
  await waitFor(
    `the cache started after the kill (${fresh.id}) to get traffic`,
    () => loop.samples.some((sample) => sample.servedBy === fresh.id),
    TRAFFIC_BOUND_MS,
    10,
  )
  const firstCall = loop.samples.find((sample) => sample.servedBy === fresh.id)!
  // Past a whole TTL after the election (leases the new leader took over would have run out by
  // now if their keepalives had not found a surviving member), the monitor still polling.
  await new Promise((resolve) =>
    setTimeout(resolve, Math.max(0, electedAt + TTL * 1000 + 1_500 - Date.now())),
  )
  await loop.reached(Math.max(MIN_CALLS, callsAtKill + 500), 60_000)
  await loop.stop()
  await monitor.stop()
  const finalKeys = await keysThrough(survivor, namespace)
  const reregistered = all
    .map((started, i) => started.instance.count('registration lost') - lostLogsBefore[i]!)
    .reduce((a, b) => a + b, 0)
  const relists = watchRelists(api) - relistsBefore

  row.measured({
    calls: loop.samples.length,
    failed: loop.failures.length,
    lost: monitor.lost.size,
    recovered: [...monitor.lost].filter((key) => finalKeys.has(key)).length,
    instances: expected.length,
    recoverMs,
    note:
      (killed === leaderBefore
        ? `new leader ${leader.name} after ${electionMs} ms (${callsInElection} calls meanwhile)`
        : `leader ${leader.name} (was ${leaderBefore.name})`) +
      `, re-registrations ${reregistered}, api watch relists ${relists} ` +
      `(api had etcd connections to [${apiConnections.join(',')}]), new cache's first call ` +
      `${firstCall.at - fresh.spawnedAt} ms after its spawn (${firstCall.at - fresh.registeredAt} ms after ` +
      `its 'registered' line, which follows its put); ${monitor.reads} phone book polls, ` +
      `${monitor.unreadable.length} unreadable`,
  })

  const gaps = monitor.describeGaps(killedAt, all)
  if (gaps) console.log(`[etcd-cluster] ${label}: registration gaps after the kill:\n${gaps}`)

  expect(loop.samples.length).toBeGreaterThanOrEqual(MIN_CALLS)
  expect(loop.failures).toEqual([])
  expect(leader).not.toBe(killed)
  expect(killed.running).toBe(false)
  monitor.check(electedAt + TTL * 1000)
  expect([...monitor.lost], `instances whose key went missing:\n${gaps}`).toEqual([])
  for (const key of [...expected, fresh.key]) expect(finalKeys.has(key), key).toBe(true)
  row.passed()
  return { killed, fresh, relists }
}

/** Restart a killed member under load: it rejoins, agrees on the leader and serves new data. */
async function restartUnderLoad(
  app: Awaited<ReturnType<typeof startApp>>,
  member: EtcdMember,
  expected: string[],
  label: string,
): Promise<void> {
  const { namespace, api } = app
  const row = summary(`${label}: restart ${member.name}`)
  const loop = startLoop(api.url)
  await loop.reached(300)
  const other = fixture.cluster.running()[0]!
  const monitor = new RegistrationMonitor(other, namespace, expected)

  const rejoinMs = await fixture.cluster.restart(member, 20_000)
  const statuses = await Promise.all(fixture.cluster.members.map((m) => fixture.cluster.status(m)))
  const leaders = new Set(statuses.map((status) => status.leader))

  // Written through one member, read from the restarted one's own store, and the other way round.
  const probeKey = `/${namespace}/probe/after-restart`
  await fixture.cluster.put(other, probeKey, 'written-through-survivor')
  const replicatedMs = await waitFor(
    'the restarted member to serve a key put through another member',
    async () => {
      const kvs = await fixture.cluster.range(member, probeKey, { serializable: true })
      return kvs[0]?.value === 'written-through-survivor'
    },
    15_000,
    20,
  )
  const backKey = `/${namespace}/probe/through-restarted`
  await fixture.cluster.put(member, backKey, 'written-through-restarted')
  const backRead = await fixture.cluster.range(other, backKey)
  // The restarted member caught up on the phone book written while it was down.
  const caughtUp = await waitFor(
    'the restarted member to hold every registration',
    async () => {
      const keys = await keysThrough(member, namespace, true)
      return expected.every((key) => keys.has(key))
    },
    15_000,
    20,
  )

  await loop.reached(MIN_CALLS, 60_000)
  await loop.stop()
  await monitor.stop()
  const finalKeys = await keysThrough(member, namespace)

  const stoppedAt = Date.now()
  row.measured({
    calls: loop.samples.length,
    failed: loop.failures.length,
    lost: monitor.lost.size,
    recovered: [...monitor.lost].filter((key) => finalKeys.has(key)).length,
    instances: expected.length,
    recoverMs: rejoinMs,
    note:
      `rejoined (healthy, same leader) after ${rejoinMs} ms, key put elsewhere readable ` +
      `${replicatedMs} ms later, registrations caught up after ${caughtUp} ms; ` +
      `${monitor.reads} phone book polls, ${monitor.unreadable.length} unreadable`,
  })

  expect(leaders.size, `leaders reported: ${[...leaders].join(',')}`).toBe(1)
  expect([...leaders][0]).not.toBe('0')
  expect(backRead[0]?.value).toBe('written-through-restarted')
  expect(loop.samples.length).toBeGreaterThanOrEqual(MIN_CALLS)
  expect(loop.failures).toEqual([])
  monitor.check(stoppedAt - 1_000)
  expect([...monitor.lost], 'instances whose key went missing').toEqual([])
  for (const key of expected) expect(finalKeys.has(key), key).toBe(true)
  row.passed()
}

afterEach(async () => {
  await Promise.all(loops.splice(0).map((loop) => loop.stop()))
  await Promise.all(monitors.splice(0).map((monitor) => monitor.stop()))
})

describe('phone book on a 3-member etcd cluster (real etcd, real processes)', () => {
  it('kill -9 of the leader during calls: 0 failed calls, registrations kept, new leader, new cache gets traffic; the member restarted rejoins', async () => {
    const app = await startApp()
    const { killed, fresh } = await killUnderLoad(app, 'leader', 'leader kill')
    const keys = [...app.all, fresh].map((started) => started.key)
    await restartUnderLoad(app, killed, keys, 'leader kill')
  }, 120_000)

  it('every member killed once in turn, so the one the api watches through dies too: the watch fails over every time', async () => {
    const app = await startApp()
    const killed = new Set<EtcdMember>()
    const started: Started[] = [...app.all]
    let relists = 0
    // Bounded by the member count: each round kills a member not killed before (the leader when
    // it is one of those), then restarts it.
    for (let round = 1; round <= fixture.cluster.members.length; round++) {
      const leader = await fixture.cluster.leader()
      const target = killed.has(leader)
        ? fixture.cluster.members.find((member) => !killed.has(member))!
        : 'leader'
      const result = await killUnderLoad(app, target, `round ${round}`)
      started.push(result.fresh)
      killed.add(result.killed)
      relists += result.relists
      const keys = started.map((s) => s.key)
      await restartUnderLoad(app, result.killed, keys, `round ${round}`)
    }
    expect(killed.size).toBe(fixture.cluster.members.length)
    // The api's resolver watch was re-established at least once (its member died) and every new
    // cache still got traffic afterwards.
    expect(relists).toBeGreaterThanOrEqual(1)
  }, 240_000)

  it('every member down for longer than the TTL during calls: 0 failed calls; back: every live instance re-registered without a restart, a cache killed meanwhile gone', async () => {
    const { cluster } = fixture
    const row = summary('full outage: every member killed for 3 TTLs, a cache killed meanwhile')
    const app = await startApp()
    const { namespace, api } = app
    const fourth = await start('cache', namespace)
    const loop = startLoop(api.url)
    await loop.reached(300)
    const live = app.all
    const registeredBefore = live.map((started) => started.instance.count('registered in etcd'))
    const marks = live.map((started) => started.instance.lines.length)
    const reader = cluster.members[0]!
    const keysBefore = await keysThrough(reader, namespace)

    const downAt = Date.now()
    await Promise.all(cluster.members.map((member) => cluster.kill(member)))
    // A cache dies during the outage: nothing can tell etcd, and its lease is restored with the
    // data dirs, so its record must go by expiry once etcd is back.
    await new Promise((resolve) => setTimeout(resolve, TTL * 1000))
    const servedByFourth = countBy(loop.samples)[fourth.id] ?? 0
    const apiMark = api.instance.lines.length
    await fourth.instance.kill('SIGKILL')
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, downAt + 3 * TTL * 1000 - Date.now())),
    )
    const restartMs = await cluster.restartAll()
    const backAt = Date.now()
    const duringOutage = loop.between(downAt, backAt - restartMs)
    await waitFor(
      'every live instance registered again on a new lease',
      async () => {
        const keys = await keysThrough(reader, namespace)
        return live.every(
          (started, i) =>
            keys.has(started.key) &&
            started.instance.count('registered in etcd') > registeredBefore[i]!,
        )
      },
      RECOVER_BOUND_MS,
      20,
    )
    const recoverMs = Date.now() - backAt
    await waitFor(
      'the record of the cache killed during the outage to expire',
      async () => !(await keysThrough(reader, namespace)).has(fourth.key),
      // Restored leases get a fresh TTL once a leader is elected, plus the election itself.
      TTL * 1000 + 15_000,
      20,
    )
    const deadGoneAt = Date.now()
    // Clients see the phone book again: a cache started now gets the api's calls.
    const fresh = await start('cache', namespace)
    await waitFor(
      'the cache started after the outage to get traffic',
      () => loop.samples.some((sample) => sample.servedBy === fresh.id),
      TRAFFIC_BOUND_MS,
      10,
    )
    // The api kept calling the caches it knew, met the dead one, and stopped once it expired.
    const ejections = await whenNoLongerTried(api.instance, fourth.id, { after: apiMark })
    await loop.reached(loop.samples.length + 300)
    await loop.stop()

    const keys = await keysThrough(reader, namespace)
    const expected = [...live, fresh].map((started) => started.key)
    const lost = live.filter((started, i) =>
      started.instance.lines.slice(marks[i]).some((line) => line.msg.includes('registration lost')),
    )
    row.measured({
      calls: loop.samples.length,
      failed: loop.failures.length,
      instances: keysBefore.size,
      lost: lost.length + (keys.has(fourth.key) ? 0 : 1),
      recovered: live.filter((started) => keys.has(started.key)).length,
      recoverMs,
      note:
        `${duringOutage.length} calls during the outage ` +
        `(${duringOutage.filter((sample) => sample.error).length} failed), cluster back in ` +
        `${restartMs} ms, dead cache's record expired ${deadGoneAt - backAt} ms after (the api ` +
        `ejected it ${ejections.length}× meanwhile), a new cache got calls`,
    })
    expect(servedByFourth, 'the cache killed in the outage served no call before').toBeGreaterThan(
      0,
    )
    expect(duringOutage.length).toBeGreaterThan(0)
    expect(loop.failures).toEqual([])
    expect(lost.map((started) => started.id)).toEqual(live.map((started) => started.id))
    expect([...keys].sort()).toEqual(expected.sort())
    expect(ejections.length).toBeGreaterThan(0)
    expect(ejections.at(-1)!.at).toBeLessThanOrEqual(deadGoneAt + WATCH_MARGIN_MS)
    row.passed()
  }, 120_000)
})
