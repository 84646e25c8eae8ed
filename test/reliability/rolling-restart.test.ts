import { Agent, request } from 'undici'
import { describe, expect, it } from 'vitest'
import { useEtcd } from '../support/etcd-fixture.js'
import { faultRow } from '../support/fault-summary.js'
import { type Started, startRegistered } from '../support/spawned-app.js'
import { waitFor } from '../support/wait.js'

// A rolling restart of the example app's caches under a stream of writes through `api.put`
// (services/api routes each key to one cache): one cache at a time, a new one is started and
// registered, then an old one gets SIGTERM and must exit 0. Every write must succeed and be
// applied exactly once: the caches' own counts of `set` calls (each instance logs them on its
// `stopped` line) must add up to the writes the api acknowledged.

const fixture = useEtcd('rolling-restart', 2)
const CACHES = 3
/** Upper bounds of the write loop; it is stopped once the restarts are done and it wrote more. */
const MAX_PUTS = 50_000
const MAX_LOOP_MS = 90_000
const PUTS_AFTER_RESTARTS = 300

const start = (role: string, namespace: string): Promise<Started> =>
  startRegistered((name, ns) => fixture.spawn(name, ns), role, namespace)

/** SIGTERM, exit code, and the `set` calls its `stopped` line says it served. */
async function stop(cache: Started): Promise<{ code: number | null; sets: number }> {
  cache.instance.child.kill('SIGTERM')
  const code = await cache.instance.exited
  // stdout can still be arriving when the exit is reported.
  await waitFor(`the stopped line of ${cache.id}`, () =>
    cache.instance.lines.some((line) => line.event === 'stopped'),
  )
  const stopped = cache.instance.lines.find((line) => line.event === 'stopped')!
  const served = stopped.served as Record<string, number> | undefined
  return { code, sets: served?.set ?? 0 }
}

/** `api.put` calls by `concurrency` workers, each key's value the call's number, until stopped. */
class PutLoop {
  ok = 0
  readonly failures: string[] = []
  readonly done: Promise<void>
  #stopped = false
  readonly #agent = new Agent({ connections: 32 })

  constructor(apiUrl: string, concurrency: number) {
    const deadline = Date.now() + MAX_LOOP_MS
    let issued = 0
    const worker = async () => {
      while (!this.#stopped && issued < MAX_PUTS && Date.now() < deadline) {
        const n = issued++
        try {
          const response = await request(`${apiUrl}/trpc/put`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ key: `key-${n % 500}`, value: `v${n}` }),
            dispatcher: this.#agent,
            headersTimeout: 15_000,
            bodyTimeout: 15_000,
          })
          const body = (await response.body.json()) as {
            result?: { data?: { ok?: boolean } }
            error?: { message?: string }
          }
          if (response.statusCode === 200 && body.result?.data?.ok === true) this.ok++
          else this.failures.push(`${response.statusCode} ${body.error?.message ?? ''}`)
        } catch (err) {
          this.failures.push(String(err))
        }
      }
    }
    this.done = Promise.all(Array.from({ length: concurrency }, worker)).then(() =>
      this.#agent.close(),
    )
  }

  get answered(): number {
    return this.ok + this.failures.length
  }

  stop(): Promise<void> {
    this.#stopped = true
    return this.done
  }
}

describe('rolling restart under writes (real etcd, real processes)', () => {
  it('3 caches replaced one at a time while api.put runs: every write succeeds, each applied exactly once', async () => {
    const row = faultRow(
      'rolling restart of 3 caches (SIGTERM each once its replacement registered) under api.put',
    )
    const namespace = fixture.namespace()
    const old = await Promise.all(Array.from({ length: CACHES }, () => start('cache', namespace)))
    const api = await start('api', namespace)
    const loop = new PutLoop(api.url, 32)
    await waitFor('the first writes', () => loop.answered >= 200)

    const replacements: Started[] = []
    const stopped: { id: string; code: number | null; sets: number; putsDuringStop: number }[] = []
    for (const cache of old) {
      replacements.push(await start('cache', namespace))
      const before = loop.answered
      const { code, sets } = await stop(cache)
      stopped.push({ id: cache.id, code, sets, putsDuringStop: loop.answered - before })
    }
    const afterRestarts = loop.answered
    await waitFor('writes after the restarts', () => {
      return loop.answered >= afterRestarts + PUTS_AFTER_RESTARTS || loop.failures.length > 0
    })
    await loop.stop()
    for (const cache of replacements) {
      const { code, sets } = await stop(cache)
      stopped.push({ id: cache.id, code, sets, putsDuringStop: 0 })
    }

    const sets = stopped.reduce((sum, cache) => sum + cache.sets, 0)
    row.measured({
      calls: loop.answered,
      failed: loop.failures.length,
      // Old caches that left (stopped, exit 0); replacements that took writes.
      lost: stopped.slice(0, CACHES).filter((cache) => cache.code === 0).length,
      recovered: stopped.slice(CACHES).filter((cache) => cache.sets > 0).length,
      instances: CACHES,
      note: `set calls counted at the caches: ${sets} = ${loop.ok} acknowledged writes; writes answered while each old cache stopped: ${stopped
        .slice(0, CACHES)
        .map((cache) => cache.putsDuringStop)
        .join(', ')}`,
    })
    expect(loop.failures).toEqual([])
    expect(stopped.map((cache) => cache.code)).toEqual(Array(2 * CACHES).fill(0))
    expect(sets).toBe(loop.ok)
    // Each cache, old and new, took writes: keys moved to the new ones and away from the old.
    for (const cache of stopped) expect(cache.sets, cache.id).toBeGreaterThan(0)
    // Writes went on while each old cache stopped (SIGTERM to exit).
    for (const cache of stopped.slice(0, CACHES)) {
      expect(cache.putsDuringStop, cache.id).toBeGreaterThan(0)
    }

    row.passed()
  })
})
