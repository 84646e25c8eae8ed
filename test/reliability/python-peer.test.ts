import { describe, expect, it } from 'vitest'
import { CallLoop, useCallLoops } from '../support/call-loop.js'
import { whenNoLongerTried } from '../support/ejections.js'
import { faultRow } from '../support/fault-summary.js'
import {
  getJson,
  queryUrl,
  RELAY_HELLO,
  PEER_TTL as TTL,
  usePythonPeers,
} from '../support/python-peer.js'
import { countBy } from '../support/spawned-app.js'
import { waitFor } from '../support/wait.js'

// A Python peer (clients/python-peer/peer.py) under faults: kill -9 during calls, SIGTERM, its key
// deleted, etcd down for longer than its TTL.

const py = usePythonPeers()
const track = useCallLoops()
/** Margin for the relay's watch to deliver a delete that the test's own read has seen. */
const WATCH_MARGIN_MS = 2_000

describe('a Python peer under faults (real etcd, real processes)', () => {
  it('kill -9 of one of two peers under calls through greet-relay: no call fails; the relay routes around it and stops trying it once its record is gone', async () => {
    const row = faultRow('kill -9 of one of 2 Python peers during calls (via ctx.deps)')
    const namespace = py.fixture.namespace()
    const [victim, survivor] = await Promise.all([py.startPeer(namespace), py.startPeer(namespace)])
    const relay = await py.startRelay(namespace)
    const loop = track(
      new CallLoop(relay.url, 100_000, {
        target: RELAY_HELLO,
        concurrency: 4,
        pauseMs: 15,
        maxMs: 90_000,
      }),
    )
    await loop.reached(300)
    const servedBefore = countBy(loop.samples)
    const logMark = relay.instance.lines.length
    await victim!.instance.kill('SIGKILL')
    const killedAt = Date.now()
    const goneMs = await waitFor(
      'the killed peer record to expire',
      async () => !(await py.fixture.probe.has(victim!.key)),
      TTL * 1000 + 10_000,
    )
    const goneAt = killedAt + goneMs
    const ejections = await whenNoLongerTried(relay.instance, victim!.id, { after: logMark })
    await loop.reached(loop.samples.length + 100)
    await loop.stop()
    const survivorThere = await py.fixture.probe.has(survivor!.key)
    const lastTried = ejections.at(-1)
    row.measured({
      calls: loop.samples.length,
      failed: loop.failures.length,
      instances: 2,
      lost: (await py.fixture.probe.has(victim!.key)) ? 0 : 1,
      recoverMs: goneMs,
      note:
        `${loop.between(killedAt).length} calls after the kill; the relay ejected the dead peer ` +
        `${ejections.length}× (last ${lastTried ? lastTried.at - killedAt : '–'} ms after the ` +
        'kill) and stopped trying it; time to recover = until its record expired',
    })
    expect(Object.keys(servedBefore).sort()).toEqual([victim!.id, survivor!.id].sort())
    expect(loop.failures).toEqual([])
    expect(loop.between(goneAt).length).toBeGreaterThan(100)
    expect(survivorThere).toBe(true)
    expect(ejections.length).toBeGreaterThan(0)
    expect(lastTried!.at).toBeLessThanOrEqual(goneAt + WATCH_MARGIN_MS)
    row.passed()
  })

  it('SIGTERM: revokes the lease (the record is gone when it exits, its TTL far from over) and exits 0', async () => {
    const namespace = py.fixture.namespace()
    const peer = await py.startPeer(namespace, { FRAMEWORK_TTL: '30' })
    expect(await py.fixture.probe.has(peer.key)).toBe(true)
    peer.instance.child.kill('SIGTERM')
    expect(await peer.instance.exited).toBe(0)
    expect(await py.fixture.probe.has(peer.key)).toBe(false)
    expect(peer.instance.count('lease revoked')).toBe(1)
  })

  it('registers again when its key is deleted, and after etcd was down for longer than the TTL', async () => {
    const namespace = py.fixture.namespace()
    const peer = await py.startPeer(namespace)
    const relay = await py.startRelay(namespace)

    // Someone deletes the key: the peer's own-key watch sees it and puts the record back.
    const deletedLease = (await py.fixture.probe.lease(peer.key)).id
    await py.fixture.probe.client.delete().key(peer.key)
    await waitFor(
      'the record back after a delete, logged as a second registration',
      async () =>
        (await py.fixture.probe.has(peer.key)) && peer.instance.count('registered in etcd') === 2,
    )

    // etcd down past the TTL: keepalives go unanswered, the peer counts the lease as lost, and
    // once etcd is back it puts the record on a new lease. (etcd revives the leases it had when it
    // starts again, renewed for a TTL, so the old key is still there at first: the test waits for
    // the new lease, not for the key.)
    const oldLease = (await py.fixture.probe.lease(peer.key)).id
    expect(oldLease).not.toBe(deletedLease)
    await py.fixture.etcd.stop()
    const stoppedAt = Date.now()
    await waitFor(
      'the peer to notice unanswered keepalives',
      () => peer.instance.count('registration lost') === 2,
      TTL * 1000 + 10_000,
    )
    const lost = peer.instance.lines.filter((line) => line.msg.includes('registration lost'))
    expect(lost.map((line) => line.reason)).toEqual([
      'own key was deleted',
      expect.stringContaining('no keepalive acknowledged'),
    ])
    expect((await getJson(`${peer.url}/readyz`)).status).toBe(503)
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, stoppedAt + TTL * 1000 + 500 - Date.now())),
    )
    await py.fixture.etcd.start()
    const restartedAt = Date.now()
    await waitFor(
      'the record on a new lease after etcd restarted',
      async () =>
        peer.instance.count('registered in etcd') === 3 &&
        (await py.fixture.probe.lease(peer.key)).id !== oldLease,
      20_000,
    )
    const reregisteredMs = Date.now() - restartedAt
    expect((await py.fixture.probe.lease(peer.key)).grantedTtl).toBe(TTL)
    await py.fixture.probe.record(peer.key)
    expect((await getJson(`${peer.url}/readyz`)).status).toBe(200)
    // The revived old lease expires without taking the key with it.
    await new Promise((resolve) => setTimeout(resolve, TTL * 1000 + 1_000))
    expect(await py.fixture.probe.has(peer.key)).toBe(true)
    console.info(`python-peer: on a new lease ${reregisteredMs} ms after etcd restarted`)
    // And the relay reaches it again through the phone book.
    await waitFor('a call through the relay after the restart', async () => {
      const answer = await getJson(queryUrl(relay.url, 'hello', { name: 'again' })).catch(
        () => undefined,
      )
      return answer?.status === 200 && answer.body.result.data.instance === peer.id
    })
  })
})
