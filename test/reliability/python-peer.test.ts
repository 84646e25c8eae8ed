import { describe, expect, it } from 'vitest'
import { CallLoop } from '../support/call-loop.js'
import { recordFault } from '../support/fault-summary.js'
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

describe('a Python peer under faults (real etcd, real processes)', () => {
  it('kill -9 of one peer during 1,200 calls: 0 failed calls, record gone within TTL + 1 s, then only the survivor', async () => {
    const namespace = py.fixture.namespace()
    const [victim, survivor] = await Promise.all([py.startPeer(namespace), py.startPeer(namespace)])
    const relay = await py.startRelay(namespace)
    // Paced (4 workers, 15 ms apart): the loop outlives the record's expiry by a few seconds.
    const loop = new CallLoop(relay.url, 1_200, {
      target: RELAY_HELLO,
      concurrency: 4,
      pauseMs: 15,
      maxMs: 45_000,
    })
    await loop.reached(300)
    expect(Object.keys(countBy(loop.samples)).sort()).toEqual([victim!.id, survivor!.id].sort())
    await victim!.instance.kill('SIGKILL')
    const killedAt = Date.now()
    const goneAfterMs = await waitFor(
      'the killed peer record to expire',
      async () => !(await py.fixture.probe.has(victim!.key)),
      TTL * 1000 + 1_000,
    )
    const goneAt = Date.now()
    expect(goneAfterMs).toBeLessThanOrEqual(TTL * 1000 + 1_000)
    expect(await py.fixture.probe.has(survivor!.key)).toBe(true)
    await loop.done
    expect(loop.samples).toHaveLength(1_200)
    expect(loop.failures).toEqual([])
    const afterKill = loop.samples.filter((sample) => sample.at > killedAt + 100)
    const afterGone = loop.samples.filter((sample) => sample.at > goneAt)
    expect(afterGone.length).toBeGreaterThan(100)
    expect(afterKill.filter((sample) => sample.servedBy !== survivor!.id)).toEqual([])
    recordFault({
      fault: 'kill -9 of one of 2 Python peers during calls (via ctx.deps)',
      calls: loop.samples.length,
      failed: loop.failures.length,
      lost: 1,
      instances: 2,
      recoverMs: goneAfterMs,
      note: 'time to recover = until the dead peer record expired; every later call on the survivor',
    })
    console.info(
      `python-peer kill -9: record gone ${goneAfterMs} ms after the kill; ` +
        `${afterKill.length} calls after the kill, ${afterGone.length} after the record went, all on the survivor`,
    )
  })

  it('SIGTERM: revokes the lease (record gone at once, long before the TTL) and exits 0', async () => {
    const namespace = py.fixture.namespace()
    const peer = await py.startPeer(namespace)
    const sentAt = Date.now()
    peer.instance.child.kill('SIGTERM')
    expect(await peer.instance.exited).toBe(0)
    expect(await py.fixture.probe.has(peer.key)).toBe(false)
    expect(Date.now() - sentAt).toBeLessThan(TTL * 1000)
    expect(peer.instance.count('lease revoked')).toBe(1)
  })

  it('registers again when its key is deleted, and after etcd was down for longer than the TTL', async () => {
    const namespace = py.fixture.namespace()
    const peer = await py.startPeer(namespace)
    const relay = await py.startRelay(namespace)

    // Someone deletes the key: the peer's own-key watch sees it and puts the record back.
    await py.fixture.probe.client.delete().key(peer.key)
    const backAfterDeleteMs = await waitFor('the record back after a delete', () =>
      py.fixture.probe.has(peer.key),
    )
    expect(backAfterDeleteMs).toBeLessThan(1_000)
    await waitFor(
      'the second registration logged',
      () => peer.instance.count('registered in etcd') === 2,
      1_000,
    )

    // etcd down past the TTL: keepalives go unanswered, the peer counts the lease as lost, and
    // once etcd is back it puts the record on a new lease. (etcd revives the leases it had when it
    // starts again, renewed for a TTL, so the old key is still there at first: the test waits for
    // the new lease, not for the key.)
    const oldLease = (await py.fixture.probe.lease(peer.key)).id
    await py.fixture.etcd.stop()
    const stoppedAt = Date.now()
    await waitFor(
      'the peer to notice unanswered keepalives',
      () => peer.instance.count('registration lost') === 2,
      TTL * 1000 + 2_000,
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
        (await py.fixture.probe.lease(peer.key).catch(() => undefined))?.id !== oldLease,
      10_000,
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
