import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { instanceKey } from '../../framework/registry/record.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { faultRow } from '../support/fault-summary.js'
import { registered } from '../support/spawned-app.js'
import { waitFor } from '../support/wait.js'

// One instance's phone book record while its process or its etcd is broken: the record goes when
// the process dies, and comes back, on a new lease, whenever the instance lives on.

const TTL = 2
/**
 * Generous bound on registering again once etcd answers (registration backoff is capped at 5 s;
 * a loaded machine adds to it). How fast is measured by bench/propagation.
 */
const REREGISTER_BOUND_MS = TTL * 1000 + 15_000

const cluster = useEtcd('reg', TTL)

function start(role: string, namespace: string) {
  return cluster.spawn(role, namespace)
}

describe('registration under faults', () => {
  it('kill -9: the record is still there at the kill, and goes when its lease expires', async () => {
    const row = faultRow('kill -9 of a registered instance')
    const ns = cluster.namespace()
    const instance = start('cache', ns)
    const { key } = await registered(instance, ns)
    await instance.kill('SIGKILL')
    // Nobody revoked anything: the lease outlives the process by up to a TTL.
    const thereAtKill = await cluster.probe.has(key)
    const goneMs = await waitFor(
      'the record to expire',
      async () => !(await cluster.probe.has(key)),
      TTL * 1000 + 10_000,
    )
    row.measured({
      instances: 1,
      lost: thereAtKill ? 1 : 0,
      recoverMs: goneMs,
      note: `record expired ${goneMs} ms after the kill (TTL ${TTL} s; bench/propagation measures this)`,
    })
    expect(thereAtKill).toBe(true)
    row.passed()
  })

  it('SIGTERM while etcd is down: exits 0, saying it could not revoke; nothing hangs', async () => {
    const ns = cluster.namespace()
    const instance = start('api', ns)
    await registered(instance, ns, 'api')
    await cluster.etcd.stop('SIGKILL')
    instance.child.kill('SIGTERM')
    // Revoke and own-key watch cancel are each bounded by the etcd call timeout (2 s); a hang
    // would run into this generous bound.
    const exit = await Promise.race([
      instance.exited,
      new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 30_000).unref()),
    ])
    expect(exit).toBe(0)
    expect(instance.count('could not revoke the lease')).toBe(1)
  })

  it('key deleted by hand with etcdctl: registered again on a new lease, without a restart', async () => {
    const row = faultRow('phone book key deleted by hand (etcdctl del)')
    const ns = cluster.namespace()
    const instance = start('cache', ns)
    const { key } = await registered(instance, ns)
    const before = await cluster.probe.lease(key)
    const lostBefore = instance.count('registration lost')
    // Proof of the fault: a watch on the key sees the delete (the instance may put the key back
    // before a read after etcdctl could see it gone: its own-key watch reacts within ms).
    const watcher = await cluster.probe.client.watch().key(key).create()
    let deleteSeen = false
    watcher.on('delete', () => {
      deleteSeen = true
    })
    execFileSync('etcdctl', ['--endpoints', cluster.etcd.endpoint, 'del', key], {
      env: { ...process.env, ETCDCTL_API: '3' },
    })
    const deletedAt = Date.now()
    await waitFor('the delete seen by a watch on the key', () => deleteSeen, 5_000).finally(() =>
      watcher.cancel(),
    )
    const goneRightAfter = deleteSeen
    await instance.waitForLog('registration lost', 10_000)
    await waitFor(
      'the key back on a new lease',
      async () => (await cluster.probe.lease(key)).id !== before.id,
      REREGISTER_BOUND_MS,
    )
    const recoverMs = Date.now() - deletedAt
    const after = await cluster.probe.lease(key)
    const noticed = instance.count('registration lost') - lostBefore
    row.measured({
      instances: 1,
      lost: noticed,
      recovered: after.id !== before.id ? 1 : 0,
      recoverMs,
      note: `lease ${before.id} → ${after.id}; 'registration lost' logged ${noticed}×`,
    })
    expect(goneRightAfter).toBe(true)
    expect(noticed).toBe(1)
    expect(after.id).not.toBe(before.id)
    expect(after.grantedTtl).toBe(TTL)
    expect((await cluster.probe.record(key)).pid).toBe(instance.pid)
    row.passed()
  })

  for (const mode of ['same data dir', 'wiped data dir'] as const) {
    it(`etcd stopped and started again (${mode}): registered again on a new lease, serving throughout`, async () => {
      const row = faultRow(`single etcd stopped past the TTL and started (${mode}), one instance`)
      const ns = cluster.namespace()
      const instance = start('cache', ns)
      const { url, key } = await registered(instance, ns)
      const before = await cluster.probe.lease(key)
      const mark = instance.lines.length
      if (mode === 'same data dir') await cluster.etcd.stop()
      else await cluster.etcd.wipe()
      // Unregistered: not ready, but alive and serving.
      await waitFor(
        'readyz 503',
        async () => (await fetch(`${url}/readyz`)).status === 503,
        TTL * 1000 + 10_000,
      )
      const lost = instance.count('registration lost')
      const healthz = (await fetch(`${url}/healthz`)).status
      const served = (await fetch(`${url}/trpc/stats`)).status
      await new Promise((resolve) => setTimeout(resolve, TTL * 1000))
      await cluster.etcd.start()
      const restartedAt = Date.now()
      await instance.waitForLog('registered in etcd', REREGISTER_BOUND_MS, mark)
      // The same data dir revives the old lease for a while: the key must be on a new one.
      await waitFor(
        'the key on a new lease',
        async () => (await cluster.probe.lease(key)).id !== before.id,
        REREGISTER_BOUND_MS,
      )
      const recoverMs = Date.now() - restartedAt
      const after = await cluster.probe.lease(key)
      row.measured({
        instances: 1,
        lost,
        recovered: after.id !== before.id ? 1 : 0,
        recoverMs,
        note: `time to recover = etcd started → the key on a new lease; /healthz ${healthz} and a call ${served} while unregistered`,
      })
      expect(lost).toBe(1)
      expect(healthz).toBe(200)
      expect(served).toBe(200)
      expect(after.grantedTtl).toBe(TTL)
      await waitFor('readyz 200', async () => (await fetch(`${url}/readyz`)).status === 200)
      expect(instance.child.exitCode).toBeNull()
      row.passed()
    })
  }

  it('etcd unreachable at boot: serves, names the endpoint and the fix, registers once etcd is up', async () => {
    await cluster.etcd.stop()
    const ns = cluster.namespace()
    const instance = start('cache', ns)
    const { url, id } = await instance.listening()
    const warning = await instance.waitForLog('cannot register in etcd', 10_000)
    expect(warning.msg).toContain(cluster.etcd.endpoint)
    expect(warning.msg).toContain('ETCD_ENDPOINTS')
    expect((await fetch(`${url}/readyz`)).status).toBe(503)
    expect((await fetch(`${url}/trpc/stats`)).status).toBe(200)
    await cluster.etcd.start()
    await instance.waitForLog('registered in etcd', REREGISTER_BOUND_MS)
    expect(await cluster.probe.has(instanceKey(ns, 'cache', id))).toBe(true)
    expect((await fetch(`${url}/readyz`)).status).toBe(200)
  })

  it('etcd unreachable for long: registration retries with jittered backoff up to its 5 s cap, and goes on retrying at the cap', async () => {
    await cluster.etcd.stop()
    const ns = cluster.namespace()
    const instance = start('cache', ns)
    // Attempt 6 is the first whose ceiling is the cap (200 ms doubled: 200 … 3 200, then 5 000).
    const CAPPED = 6
    await instance.waitForLog('cannot register in etcd', 10_000)
    await waitFor(
      `three retries at the cap (attempt ${CAPPED + 2})`,
      () =>
        instance.lines.some(
          (line) =>
            line.msg.includes('cannot register in etcd') && (line.attempt as number) > CAPPED + 1,
        ),
      60_000,
      100,
    )
    const retries = instance.lines
      .filter((line) => line.msg.includes('cannot register in etcd'))
      .map((line) => ({ attempt: line.attempt as number, delayMs: line.retryInMs as number }))
    expect(retries.map((retry) => retry.attempt)).toEqual(retries.map((_, i) => i + 1))
    for (const { attempt, delayMs } of retries) {
      // Exponential from 200 ms, capped at 5 s, with the upper half jittered.
      const ceiling = Math.min(5_000, 200 * 2 ** (attempt - 1))
      expect(delayMs, `attempt ${attempt}`).toBeGreaterThanOrEqual(ceiling / 2)
      expect(delayMs, `attempt ${attempt}`).toBeLessThanOrEqual(ceiling)
    }
    // Jittered: the delays at the cap are not one fixed value (3 draws from [2 500, 5 000] ms).
    const atCap = retries.filter((retry) => retry.attempt >= CAPPED).map((retry) => retry.delayMs)
    expect(new Set(atCap).size).toBeGreaterThan(1)
    await cluster.etcd.start()
    await instance.waitForLog('registered in etcd', REREGISTER_BOUND_MS)
  }, 120_000)
})
