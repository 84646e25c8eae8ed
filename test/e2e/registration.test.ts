import { describe, expect, it } from 'vitest'
import { rolePrefix } from '../../framework/registry/record.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { registered } from '../support/spawned-app.js'

const TTL = 2

const cluster = useEtcd('reg', TTL)

function start(role: string, namespace: string) {
  return cluster.spawn(role, namespace)
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
  it('registers only once it listens: the moment its record appears, its URL answers', async () => {
    const ns = cluster.namespace()
    // Watch the role's prefix before the instance exists; on its first put, call the URL at once.
    const watcher = await cluster.probe.client.watch().prefix(rolePrefix(ns, 'cache')).create()
    const firstAnswer = new Promise<string>((resolve) => {
      watcher.once('put', (kv) => {
        const { url } = JSON.parse(kv.value.toString()) as { url: string }
        fetch(`${url}/healthz`).then(
          (response) => resolve(`${response.status}`),
          (err: Error) => resolve(`${err.message} ${String((err.cause as Error)?.message)}`),
        )
      })
    })
    try {
      const instance = start('cache', ns)
      expect(await firstAnswer).toBe('200')
      await instance.waitForLog('registered in etcd')
      const messages = instance.lines.map((line) => line.msg)
      expect(messages.indexOf('listening')).toBeGreaterThanOrEqual(0)
      expect(messages.indexOf('listening')).toBeLessThan(messages.indexOf('registered in etcd'))
    } finally {
      await watcher.cancel()
    }
  })
})
