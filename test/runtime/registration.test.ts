import { execFileSync } from 'node:child_process'
import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { instanceKey } from '../../framework/registry/record.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { REPO_ROOT, type SpawnedInstance } from '../support/instance.js'
import { waitFor } from '../support/wait.js'

const FIXTURE_APP = resolve(REPO_ROOT, 'test/fixtures/app')
const TTL = 2
/** Upper bound on the re-registration backoff once etcd answers again (cap 5 s, plus breaker half-open). */
const BACKOFF_BOUND_MS = 6_000

const cluster = useEtcd('reg', TTL)

function start(
  role: string,
  namespace: string,
  env: Record<string, string> = {},
  appRoot?: string,
) {
  return cluster.spawn(role, namespace, { env, appRoot })
}

async function registered(instance: SpawnedInstance, namespace: string, role = 'cache') {
  const { url, id } = await instance.listening()
  await instance.waitForLog('registered in etcd')
  return { url, id, key: instanceKey(namespace, role, id) }
}

describe('registration', () => {
  it('puts a valid record on a lease whose TTL is FRAMEWORK_TTL', async () => {
    const ns = cluster.namespace()
    const instance = start('cache', ns)
    const { url, id, key } = await registered(instance, ns)
    const record = await cluster.probe.record(key)
    expect(record).toMatchObject({
      v: 1,
      role: 'cache',
      id,
      url,
      version: '0.1.0',
      procedures: { get: 'query', set: 'mutation', del: 'mutation', stats: 'query' },
      pid: instance.pid,
    })
    expect(record.contract).toMatch(/^[0-9a-f]{16}$/)
    const lease = await cluster.probe.lease(key)
    expect(lease.grantedTtl).toBe(TTL)
    expect((await fetch(`${url}/readyz`)).status).toBe(200)
  })

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

  it('SIGTERM: the key is gone within 500 ms while a slow in-flight request completes; exit 0', async () => {
    const ns = cluster.namespace()
    const instance = start('slow', ns, { FRAMEWORK_TTL: '10' }, FIXTURE_APP)
    const { url, key } = await registered(instance, ns, 'slow')
    const slow = fetch(
      `${url}/trpc/sleep?input=${encodeURIComponent(JSON.stringify({ ms: 1500 }))}`,
    )
    await new Promise((resolve) => setTimeout(resolve, 100)) // the request is in flight
    const sentAt = Date.now()
    instance.child.kill('SIGTERM')
    await waitFor('key to be revoked', async () => !(await cluster.probe.has(key)), 2_000, 10)
    expect(Date.now() - sentAt).toBeLessThan(500)
    const response = await slow
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({ result: { data: { sleptMs: 1500 } } })
    expect(await instance.exited).toBe(0)
    expect(instance.count('drained in-flight requests')).toBe(1)
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
