import { describe, expect, it } from 'vitest'
import { rolePrefix } from '../../framework/registry/record.js'
import { CallLoop, useCallLoops } from '../support/call-loop.js'
import { ejectionsOf, whenNoLongerTried } from '../support/ejections.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { faultRow } from '../support/fault-summary.js'
import { countBy, type Started, startExampleApp, startRegistered } from '../support/spawned-app.js'
import { waitFor } from '../support/wait.js'

// The example app (three caches, an api relaying to them) while one cache dies or etcd stops.
// Every check can fail: the killed cache was in rotation before the kill, the api met it dead
// (its client ejected it) and stopped trying it once its record left etcd.

const TTL = 2
/** Margin for the api's watch to deliver a delete that the test's own read has seen. */
const WATCH_MARGIN_MS = 2_000

const cluster = useEtcd('deps', TTL)
const spawn = (role: string, namespace: string) => cluster.spawn(role, namespace)
const track = useCallLoops()

function startApp() {
  return startExampleApp(spawn, cluster.namespace())
}

function start(role: string, namespace: string) {
  return startRegistered(spawn, role, namespace)
}

/** A long, paced loop through the api; each test stops it when it has seen what it needs. */
function loopThrough(api: Started, concurrency = 8): CallLoop {
  return track(new CallLoop(api.url, 100_000, { concurrency, pauseMs: 2, maxMs: 90_000 }))
}

async function cacheKeys(namespace: string): Promise<string[]> {
  return cluster.probe.client.getAll().prefix(rolePrefix(namespace, 'cache')).keys()
}

function sleepUntil(at: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())))
}

describe('ctx.deps through discovery under faults (real etcd, real processes)', () => {
  it('kill -9 of one of three caches under calls: no call fails; the api routes around it and stops trying it once its record is gone', async () => {
    const row = faultRow('kill -9 of one of 3 caches during calls')
    const { namespace, caches, api } = await startApp()
    const victim = caches[0]!
    const loop = loopThrough(api)
    await loop.reached(500)
    const servedBefore = countBy(loop.samples)[victim.id] ?? 0
    const keysBefore = await cacheKeys(namespace)
    const logMark = api.instance.lines.length

    await victim.instance.kill('SIGKILL')
    const killedAt = Date.now()
    const goneMs = await waitFor(
      'the killed cache record to expire',
      async () => !(await cluster.probe.has(victim.key)),
      TTL * 1000 + 10_000,
    )
    const goneAt = killedAt + goneMs
    const ejections = await whenNoLongerTried(api.instance, victim.id, { after: logMark })
    await loop.reached(loop.samples.length + 300)
    await loop.stop()
    const keysAfter = await cacheKeys(namespace)
    const afterKill = loop.between(killedAt)
    const lastTried = ejections.at(-1)
    row.measured({
      calls: loop.samples.length,
      failed: loop.failures.length,
      instances: keysBefore.length,
      lost: keysBefore.filter((key) => !keysAfter.includes(key)).length,
      recoverMs: goneMs,
      note:
        `${afterKill.length} calls after the kill, slowest ${loop.slowestMs} ms; the api ejected ` +
        `the dead cache ${ejections.length}× (last ${lastTried ? lastTried.at - killedAt : '–'} ms ` +
        'after the kill) and stopped trying it; time to recover = until its record expired',
    })

    expect(servedBefore, 'the victim served no call before the kill').toBeGreaterThan(0)
    expect(loop.failures).toEqual([])
    expect(afterKill.length).toBeGreaterThan(300)
    // The api met the dead cache (connections refused), and stopped once it left the phone book.
    expect(ejections.length).toBeGreaterThan(0)
    expect(lastTried!.at).toBeLessThanOrEqual(goneAt + WATCH_MARGIN_MS)
    expect(keysAfter.sort()).toEqual(
      caches
        .slice(1)
        .map((cache) => cache.key)
        .sort(),
    )
    row.passed()
  })

  it('SIGTERM of one of three caches under calls: no call fails; a cache started afterwards gets calls', async () => {
    const row = faultRow('SIGTERM of one of 3 caches during calls, a new one started')
    const { namespace, caches, api } = await startApp()
    const victim = caches[1]!
    const loop = loopThrough(api)
    await loop.reached(300)
    const servedBefore = countBy(loop.samples)[victim.id] ?? 0
    const keysBefore = await cacheKeys(namespace)
    const logMark = api.instance.lines.length

    victim.instance.child.kill('SIGTERM')
    const exitCode = await victim.instance.exited
    const stoppedAt = Date.now()
    const fresh = await start('cache', namespace)
    await waitFor(
      `the cache started after the stop (${fresh.id}) to get calls`,
      () => loop.samples.some((sample) => sample.servedBy === fresh.id),
      20_000,
    )
    const ejections = await whenNoLongerTried(api.instance, victim.id, { after: logMark })
    await loop.reached(loop.samples.length + 300)
    await loop.stop()
    const first = loop.samples.find((sample) => sample.servedBy === fresh.id)!
    const keysAfter = await cacheKeys(namespace)
    row.measured({
      calls: loop.samples.length,
      failed: loop.failures.length,
      instances: keysBefore.length,
      lost: keysBefore.filter((key) => !keysAfter.includes(key)).length,
      recoverMs: first.at - fresh.registeredAt,
      note:
        `exit code ${exitCode}; ${loop.between(stoppedAt).length} calls after the stop, slowest ` +
        `${loop.slowestMs} ms; time to recover = the new cache registered → its first call`,
    })

    expect(servedBefore, 'the victim served no call before the stop').toBeGreaterThan(0)
    expect(exitCode).toBe(0)
    expect(loop.failures).toEqual([])
    // Its lease was revoked before it stopped: the api does not try it after that.
    expect(ejections.filter((ejection) => ejection.at > stoppedAt + WATCH_MARGIN_MS)).toEqual([])
    expect(keysAfter.sort()).toEqual([caches[0]!.key, caches[2]!.key, fresh.key].sort())
    row.passed()
  })

  it('etcd stopped for longer than the TTL: calls go on to the known caches, every cache registers again on a new lease, and adds and removes are tracked again', async () => {
    const row = faultRow('single etcd stopped for longer than the TTL during calls')
    const { namespace, caches, api } = await startApp()
    const leasesBefore = await Promise.all(caches.map((cache) => cluster.probe.lease(cache.key)))
    const lostBefore = caches.map((cache) => cache.instance.count('registration lost'))

    await cluster.etcd.stop()
    const stoppedAt = Date.now()
    const during = loopThrough(api, 4)
    // Down past the TTL: every cache's lease lapses, and each must notice.
    await waitFor(
      'every cache to notice that its registration is lost',
      () => caches.every((cache, i) => cache.instance.count('registration lost') > lostBefore[i]!),
      TTL * 1000 + 10_000,
    )
    await sleepUntil(stoppedAt + TTL * 1000 + 500)
    await during.reached(300)
    await during.stop()
    const lost = caches.filter(
      (cache, i) => cache.instance.count('registration lost') > lostBefore[i]!,
    )

    await cluster.etcd.start()
    const restartedAt = Date.now()
    // The same data dir revives the old leases for a while, so a key being there proves nothing:
    // each must be on a lease of its own registering again.
    const recoverMs = await waitFor(
      'every cache registered again on a new lease',
      async () => {
        const leases = await Promise.all(caches.map((cache) => cluster.probe.lease(cache.key)))
        return leases.every((lease, i) => lease.id !== leasesBefore[i]!.id)
      },
      TTL * 1000 + 15_000,
    )
    const reregistered = (
      await Promise.all(caches.map((cache) => cluster.probe.lease(cache.key)))
    ).filter((lease, i) => lease.id !== leasesBefore[i]!.id).length

    // Then a new one joins and an old one leaves: the api's watch must see both.
    const fresh = await start('cache', namespace)
    const leaving = caches[2]!
    await leaving.instance.kill('SIGTERM')
    const logMark = api.instance.lines.length
    const after = loopThrough(api, 4)
    await after.reached(300)
    await after.stop()
    const served = countBy(after.samples)
    const triedLeaving = ejectionsOf(api.instance, leaving.id, logMark)
    row.measured({
      calls: during.samples.length + after.samples.length,
      failed: during.failures.length + after.failures.length,
      instances: caches.length,
      lost: lost.length,
      recovered: reregistered,
      recoverMs,
      note:
        `${during.samples.length} calls while etcd was down (${during.failures.length} failed), ` +
        `${after.samples.length} after (${after.failures.length} failed); time to recover = etcd ` +
        `started → every cache on a new lease (${Date.now() - restartedAt} ms until the checks after it)`,
    })

    expect(during.failures).toEqual([])
    expect(Object.keys(countBy(during.samples)).sort()).toEqual(caches.map((c) => c.id).sort())
    expect(lost.map((cache) => cache.id)).toEqual(caches.map((cache) => cache.id))
    expect(reregistered).toBe(caches.length)
    expect(after.failures).toEqual([])
    expect(served[fresh.id]).toBeGreaterThan(0)
    // Had the api missed the delete, it would have called the stopped cache and been refused.
    expect(triedLeaving).toEqual([])
    row.passed()
  })

  it('junk records put by hand are skipped with one warning each; calls unaffected', async () => {
    const { namespace, api } = await startApp()
    const prefix = rolePrefix(namespace, 'cache')
    await cluster.probe.client.put(`${prefix}junk-not-json`).value('{not json')
    await cluster.probe.client
      .put(`${prefix}junk-v2`)
      .value(JSON.stringify({ v: 2, role: 'cache', id: 'junk-v2', url: 'http://127.0.0.1:1' }))
    await cluster.probe.client
      .put(`${prefix}junk-no-url`)
      .value(JSON.stringify({ v: 1, role: 'cache', id: 'junk-no-url' }))
    const loop = new CallLoop(api.url, 300, { concurrency: 4 })
    await loop.done
    expect(loop.failures).toEqual([])
    for (const id of ['junk-not-json', 'junk-v2', 'junk-no-url']) {
      const warnings = api.instance.lines.filter(
        (line) =>
          line.msg.includes('skipping malformed phone book record') &&
          line.key === `${prefix}${id}`,
      )
      expect(warnings, id).toHaveLength(1)
    }
  })
})
