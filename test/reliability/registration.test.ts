import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { instanceKey } from '../../framework/registry/record.js'
import { useEtcd } from '../support/etcd-fixture.js'
import type { SpawnedInstance } from '../support/instance.js'
import { waitFor } from '../support/wait.js'

const TTL = 2
/** Upper bound on the re-registration backoff once etcd answers again (cap 5 s, plus breaker half-open). */
const BACKOFF_BOUND_MS = 6_000

const cluster = useEtcd('reg', TTL)

function start(role: string, namespace: string) {
  return cluster.spawn(role, namespace)
}

async function registered(instance: SpawnedInstance, namespace: string, role = 'cache') {
  const { url, id } = await instance.listening()
  await instance.waitForLog('registered in etcd')
  return { url, id, key: instanceKey(namespace, role, id) }
}

describe('registration under faults', () => {
  it('kill -9: the key is gone within TTL + 1 s', async () => {
    const ns = cluster.namespace()
    const instance = start('cache', ns)
    const { key } = await registered(instance, ns)
    await instance.kill('SIGKILL')
    const killedAt = Date.now()
    await waitFor(
      'key to expire',
      async () => !(await cluster.probe.has(key)),
      (TTL + 1) * 1000 + 500,
    )
    expect(Date.now() - killedAt).toBeLessThanOrEqual((TTL + 1) * 1000)
  })

  it('SIGTERM while etcd is down: exits 0 within the revoke and cancel bounds, nothing hangs', async () => {
    const ns = cluster.namespace()
    const instance = start('api', ns)
    await registered(instance, ns, 'api')
    await cluster.etcd.stop('SIGKILL')
    const sentAt = Date.now()
    instance.child.kill('SIGTERM')
    expect(await instance.exited).toBe(0)
    // Revoke and own-key watch cancel are each bounded by the etcd call timeout (2 s).
    expect(Date.now() - sentAt).toBeLessThan(8_000)
    expect(instance.count('could not revoke the lease')).toBe(1)
  })

  it('key deleted by hand with etcdctl: registered again without a restart', async () => {
    const ns = cluster.namespace()
    const instance = start('cache', ns)
    const { key } = await registered(instance, ns)
    const before = await cluster.probe.lease(key)
    execFileSync('etcdctl', ['--endpoints', cluster.etcd.endpoint, 'del', key], {
      env: { ...process.env, ETCDCTL_API: '3' },
    })
    await instance.waitForLog('registration lost', 5_000)
    await waitFor('key to come back', () => cluster.probe.has(key), TTL * 1000 + BACKOFF_BOUND_MS)
    const after = await cluster.probe.lease(key)
    expect(after.id).not.toBe(before.id)
    expect((await cluster.probe.record(key)).pid).toBe(instance.pid)
  })

  for (const mode of ['same data dir', 'wiped data dir'] as const) {
    it(`etcd stopped and started again (${mode}): registered again, serving throughout`, async () => {
      const ns = cluster.namespace()
      const instance = start('cache', ns)
      const { url, key } = await registered(instance, ns)
      const lost = instance.lines.length
      if (mode === 'same data dir') await cluster.etcd.stop()
      else await cluster.etcd.wipe()
      // Unregistered: not ready, but alive and serving.
      await waitFor(
        'readyz 503',
        async () => (await fetch(`${url}/readyz`)).status === 503,
        (TTL + 2) * 1000,
      )
      expect((await fetch(`${url}/healthz`)).status).toBe(200)
      expect((await fetch(`${url}/trpc/stats`)).status).toBe(200)
      await new Promise((resolve) => setTimeout(resolve, TTL * 1000))
      await cluster.etcd.start()
      const restartedAt = Date.now()
      await instance.waitForLog('registered in etcd', TTL * 1000 + BACKOFF_BOUND_MS, lost)
      expect(Date.now() - restartedAt).toBeLessThanOrEqual(TTL * 1000 + BACKOFF_BOUND_MS)
      expect(await cluster.probe.has(key)).toBe(true)
      expect((await cluster.probe.lease(key)).grantedTtl).toBe(TTL)
      await waitFor('readyz 200', async () => (await fetch(`${url}/readyz`)).status === 200, 2_000)
      expect(instance.child.exitCode).toBeNull()
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
    await instance.waitForLog('registered in etcd', TTL * 1000 + BACKOFF_BOUND_MS)
    expect(await cluster.probe.has(instanceKey(ns, 'cache', id))).toBe(true)
    expect((await fetch(`${url}/readyz`)).status).toBe(200)
  })
})
