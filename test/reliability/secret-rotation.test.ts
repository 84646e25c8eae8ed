import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { Dependencies } from '../../framework/client/dependencies.js'
import { createEtcdClient } from '../../framework/registry/etcd-client.js'
import { CallTokens } from '../../framework/security/call-tokens.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { faultRow } from '../support/fault-summary.js'
import { type Started, startRegistered } from '../support/spawned-app.js'
import { waitFor } from '../support/wait.js'

// A rotation of the namespace secret under load (real etcd, real processes): every instance of
// the example app (api, two caches) is restarted one at a time onto the new secret with the old
// one as FRAMEWORK_SECRET_PREVIOUS, then once more with the new secret alone. Calls run through
// discovery the whole time (a test client signing with the new secret, the old as previous); not
// one may fail. Mixed phases both ways are crossed: a new api calls old caches (they refuse the
// new secret; the api sends tokens signed with the previous one) and old callers call new
// instances (which accept the previous secret).

const fixture = useEtcd('secret-rotation', 2)
const OLD = `${'o'.repeat(20)}-the-secret-before-the-rotation`
const NEW = `${'n'.repeat(20)}-the-secret-after-the-rotation`

function secretFile(secret: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'rotation-')), 'secret')
  writeFileSync(file, secret)
  chmodSync(file, 0o600)
  return file
}

describe('secret rotation with a bounded load running', () => {
  it('restarting every instance onto a new secret (old one as previous), then without it: 0 failed calls', async () => {
    const namespace = fixture.namespace()
    const oldFile = secretFile(OLD)
    const newFile = secretFile(NEW)
    const phases = {
      old: { FRAMEWORK_SECRET_FILE: oldFile },
      rotating: { FRAMEWORK_SECRET_FILE: newFile, FRAMEWORK_SECRET_PREVIOUS_FILE: oldFile },
      done: { FRAMEWORK_SECRET_FILE: newFile },
    }
    const start = (role: string, env: Record<string, string>) =>
      startRegistered((name, ns) => fixture.spawn(name, ns, { env }), role, namespace)
    const stop = async (instance: Started) => {
      instance.instance.child.kill('SIGTERM')
      return instance.instance.exited
    }

    let api = await start('api', phases.old)
    let caches = [await start('cache', phases.old), await start('cache', phases.old)]

    // The load: api.get through discovery, as a caller that already has the new secret.
    const etcd = createEtcdClient(fixture.env(namespace).ETCD_ENDPOINTS!.split(','))
    const deps = new Dependencies({
      etcd,
      etcdEndpoints: [fixture.env(namespace).ETCD_ENDPOINTS!],
      namespace,
      deps: { api: {} },
      log: pino({ level: 'silent' }),
      tokens: new CallTokens({
        caller: 'tester',
        namespace,
        secret: new TextEncoder().encode(NEW),
        previousSecret: new TextEncoder().encode(OLD),
      }),
    })
    const client = deps.clients.get('api')!
    let calls = 0
    const failures: string[] = []
    let running = true
    const worker = async (w: number) => {
      for (let n = 0; running; n++) {
        try {
          const answer = (await client.call('get', { key: `k${w}-${n % 20}` })) as {
            hit?: unknown
          }
          if (answer?.hit !== false) failures.push(`wrong answer ${JSON.stringify(answer)}`)
        } catch (err) {
          failures.push((err as Error).message)
        }
        calls++
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    }
    const load = Promise.all([0, 1, 2, 3].map(worker))
    try {
      await waitFor('calls flowing', () => calls >= 50, 30_000)
      for (const env of [phases.rotating, phases.done]) {
        // The api first: a new api calls caches that may not have the new secret yet.
        const nextApi = await start('api', env)
        expect(await stop(api)).toBe(0)
        api = nextApi
        const before = calls
        await waitFor('calls through the new api', () => calls >= before + 50, 30_000)
        const next: Started[] = []
        for (const cache of caches) {
          next.push(await start('cache', env))
          expect(await stop(cache)).toBe(0)
          const mark = calls
          await waitFor('calls after a cache restart', () => calls >= mark + 50, 30_000)
        }
        caches = next
      }
    } finally {
      running = false
      await load
      await deps.close()
      etcd.close()
    }
    const row = faultRow('namespace secret rotated (rolling restarts of api + 2 caches, twice)')
    row.measured({ calls, failed: failures.length, instances: 3 })
    expect(failures).toEqual([])
    expect(calls).toBeGreaterThan(300)
    row.passed()
  }, 240_000)
})
