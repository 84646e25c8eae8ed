import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { DEADLINE_HEADER } from '../../framework/protocol/headers.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { REPO_ROOT } from '../support/instance.js'

const FIXTURE_APP = resolve(REPO_ROOT, 'test/fixtures/app')

const cluster = useEtcd('deadlines')

function start(role: string, namespace: string, env: Record<string, string> = {}) {
  return cluster.spawn(role, namespace, { env, appRoot: FIXTURE_APP })
}

const sleepUrl = (url: string, ms: number) =>
  `${url}/trpc/sleep?input=${encodeURIComponent(JSON.stringify({ ms }))}`

describe('deadlines', () => {
  it('the caller’s remaining deadline travels to nested calls; expiry → TIMEOUT', async () => {
    const ns = cluster.namespace()
    const slow = start('slow', ns)
    await slow.waitForLog('registered in etcd')
    const relay = start('relay', ns)
    const { url } = await relay.listening()
    await relay.waitForLog('registered in etcd')

    // Without a deadline header the nested call has the default 10 s and succeeds.
    const ok = await fetch(sleepUrl(url, 200))
    expect(ok.status).toBe(200)

    const started = performance.now()
    const response = await fetch(sleepUrl(url, 3_000), { headers: { [DEADLINE_HEADER]: '400' } })
    const elapsed = performance.now() - started
    const body = (await response.json()) as { error: { message: string; data: { code: string } } }
    expect(response.status).toBe(408)
    expect(body.error.data.code).toBe('TIMEOUT')
    expect(body.error.message).toContain('slow.sleep')
    expect(elapsed).toBeGreaterThanOrEqual(350)
    // Ended by the 400 ms deadline, not by the 3 s the procedure would have taken.
    expect(elapsed).toBeLessThan(3_000)
  })
})

describe('waitForDeps', () => {
  it('registers (and is ready) only once every dependency has a live instance', async () => {
    const ns = cluster.namespace()
    const relay = start('relay', ns)
    const { url } = await relay.listening()
    await relay.waitForLog('waiting for dependencies')
    await new Promise((r) => setTimeout(r, 500))
    expect((await fetch(`${url}/readyz`)).status).toBe(503)
    expect(relay.count('registered in etcd')).toBe(0)
    start('slow', ns)
    await relay.waitForLog('registered in etcd', 15_000)
    expect((await fetch(`${url}/readyz`)).status).toBe(200)
  })

  it('times out with a message naming the missing role, exit 1', async () => {
    const ns = cluster.namespace()
    const relay = start('relay', ns, { RELAY_WAIT_FOR_DEPS_MS: '500' })
    expect(await relay.exited).toBe(1)
    expect(relay.stderr).toMatch(/waitForDeps: no live instance of 'slow' after 500 ms/)
  })
})
