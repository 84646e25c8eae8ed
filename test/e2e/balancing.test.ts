import { resolve } from 'node:path'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Connection, connect } from '../../framework/client/connect.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { type SpawnedInstance, spawnInstance, testEnv } from '../support/instance.js'
import { waitFor } from '../support/wait.js'

// The default balancer (p2c on a peak-EWMA cost) against real instances: `tunable` processes
// whose speed the test sets, called from this process through `connect()` as `ctx.deps` would.
const APP = resolve(import.meta.dirname, '../fixtures/app')
const fixture = useEtcd('balancing', 2)

/** One answered call: when (epoch ms) and which instance answered. */
interface Answer {
  at: number
  id: string
}

interface Tunable {
  process: SpawnedInstance
  id: string
  url: string
  /** When it logged "registered" (epoch ms, its own clock: same machine). */
  registeredAt: number
}

/**
 * A `tunable` instance. `untracked` ones outlive a test (the fixture kills its own after each):
 * the caller kills them.
 */
async function startTunable(namespace: string, untracked = false): Promise<Tunable> {
  const process = untracked
    ? spawnInstance('tunable', { appRoot: APP, env: testEnv(fixture.etcd.endpoint, namespace) })
    : fixture.spawn('tunable', namespace, { appRoot: APP })
  const { id, url } = await process.listening()
  const registered = await process.waitForLog('registered')
  return { process, id, url, registeredAt: registered.time as number }
}

/** Sets an instance's added delay by calling it directly (not through the balancer). */
async function setDelay(instance: Tunable, ms: number): Promise<void> {
  const response = await request(`${instance.url}/_rpc/setDelay`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ms }),
  })
  const body = (await response.body.json()) as { result?: { data: { delayMs: number } } }
  expect(body.result?.data.delayMs).toBe(ms)
}

/**
 * `callers` concurrent loops of `work` through the client, until `stop()` returns true, `maxCalls`
 * answers or `maxMs` (bounded in count and time). Every failure is kept.
 */
async function callLoop(
  connection: Connection<Record<string, never>>,
  options: { callers: number; maxCalls: number; maxMs: number; stop?: () => boolean },
): Promise<{ answers: Answer[]; failures: string[] }> {
  const tunable = (connection.deps as unknown as { tunable: { work(): Promise<string> } }).tunable
  const answers: Answer[] = []
  const failures: string[] = []
  const deadline = Date.now() + options.maxMs
  let issued = 0
  const worker = async () => {
    while (issued < options.maxCalls && Date.now() < deadline && !options.stop?.()) {
      issued++
      try {
        const id = await tunable.work()
        answers.push({ at: Date.now(), id })
      } catch (err) {
        failures.push(String(err))
      }
    }
  }
  await Promise.all(Array.from({ length: options.callers }, worker))
  return { answers, failures }
}

/** Each instance's share of `answers` (0 for an instance that got none). */
function shares(answers: Answer[], ids: string[]): Record<string, number> {
  const counts = Object.fromEntries(ids.map((id) => [id, 0]))
  for (const answer of answers) counts[answer.id] = (counts[answer.id] ?? 0) + 1
  return Object.fromEntries(ids.map((id) => [id, counts[id]! / Math.max(1, answers.length)]))
}

function client(namespace: string): Connection<Record<string, never>> {
  return connect({
    deps: { tunable: true } as never,
    etcdEndpoints: fixture.etcd.endpoint,
    namespace,
  })
}

describe('p2c balancing over real instances', () => {
  let namespace: string
  let instances: Tunable[]
  beforeAll(async () => {
    namespace = fixture.namespace()
    // Shared by the tests of this group (cold for the first one, as a new user's would be).
    instances = await Promise.all([0, 1, 2].map(() => startTunable(namespace, true)))
  })
  afterAll(async () => {
    for (const instance of instances) await instance.process.kill()
  })

  it('1 caller, 600 sequential calls over 3 healthy instances: each serves >= 25% (3 fresh clients in a row)', async () => {
    const ids = instances.map((instance) => instance.id)
    for (let round = 0; round < 3; round++) {
      const connection = client(namespace)
      try {
        const { answers, failures } = await callLoop(connection, {
          callers: 1,
          maxCalls: 600,
          maxMs: 60_000,
        })
        expect(failures).toEqual([])
        expect(answers).toHaveLength(600)
        const share = shares(answers, ids)
        for (const id of ids) expect(share[id], JSON.stringify(share)).toBeGreaterThanOrEqual(0.25)
      } finally {
        await connection.close()
      }
    }
  })

  it('8 concurrent callers: each instance serves >= 25%', async () => {
    const ids = instances.map((instance) => instance.id)
    const connection = client(namespace)
    try {
      const { answers, failures } = await callLoop(connection, {
        callers: 8,
        maxCalls: 6_000,
        maxMs: 30_000,
      })
      expect(failures).toEqual([])
      expect(answers.length).toBeGreaterThan(1_000)
      const share = shares(answers, ids)
      for (const id of ids) expect(share[id], JSON.stringify(share)).toBeGreaterThanOrEqual(0.25)
    } finally {
      await connection.close()
    }
  })

  it('one instance 20 ms slower: under 8 callers it serves <= 15% but >= 1%; fast again, >= 25% within 10 s', async () => {
    const ids = instances.map((instance) => instance.id)
    const slow = instances[0]!
    const connection = client(namespace)
    try {
      // Warm: every instance answered and measured at its normal speed first.
      await callLoop(connection, { callers: 8, maxCalls: 2_000, maxMs: 20_000 })
      await setDelay(slow, 20)
      const slowed = await callLoop(connection, { callers: 8, maxCalls: 20_000, maxMs: 4_000 })
      expect(slowed.failures).toEqual([])
      // The slow phase is measured after its first second, once the estimate has seen it.
      const steady = slowed.answers.filter((a) => a.at >= slowed.answers[0]!.at + 1_000)
      // Enough calls to measure a share (how many is the bench's business, not this test's).
      expect(steady.length).toBeGreaterThan(300)
      const slowShare = shares(steady, ids)[slow.id]!
      expect(slowShare).toBeLessThanOrEqual(0.15)
      expect(slowShare).toBeGreaterThanOrEqual(0.01)

      await setDelay(slow, 0)
      const fastAgainAt = Date.now()
      const recovery = await callLoop(connection, { callers: 8, maxCalls: 400_000, maxMs: 10_500 })
      // The first 500 ms window (sliding by 250 ms) in which it is back at >= 25%.
      let recoveredAfterMs: number | undefined
      for (let end = fastAgainAt + 500; end <= fastAgainAt + 10_000; end += 250) {
        const window = recovery.answers.filter((a) => a.at > end - 500 && a.at <= end)
        if (window.length >= 40 && shares(window, ids)[slow.id]! >= 0.25) {
          recoveredAfterMs = end - fastAgainAt
          break
        }
      }
      expect(recovery.failures).toEqual([])
      expect(recoveredAfterMs, 'its share never reached 25% in a 500 ms window').toBeDefined()
      expect(recoveredAfterMs!).toBeLessThanOrEqual(10_000)
      console.log(
        `slow instance: ${(slowShare * 100).toFixed(1)}% of ${steady.length} calls at +20 ms; back to >= 25% ${recoveredAfterMs} ms after it was fast again`,
      )
    } finally {
      await setDelay(slow, 0)
      await connection.close()
    }
  })
})

describe('p2c balancing through a rolling restart under load', () => {
  it('every new instance serves its fair share within 2 s of registering', async () => {
    const namespace = fixture.namespace()
    const old = await Promise.all([0, 1, 2].map(() => startTunable(namespace)))
    const fresh: Tunable[] = []
    const connection = client(namespace)
    let done = false
    try {
      const loop = callLoop(connection, {
        callers: 8,
        maxCalls: 1_000_000,
        maxMs: 60_000,
        stop: () => done,
      })
      // Replace one instance at a time: start the new one, let it take traffic, stop an old one.
      for (const previous of old) {
        const next = await startTunable(namespace)
        fresh.push(next)
        await waitFor(
          '2.5 s with the new instance registered',
          () => Date.now() >= next.registeredAt + 2_500,
        )
        previous.process.child.kill('SIGTERM')
        expect(await previous.process.exited).toBe(0)
      }
      await new Promise((resolve) => setTimeout(resolve, 500))
      done = true
      const { answers, failures } = await loop
      expect(failures).toEqual([])
      const shareAfter2s: number[] = []
      for (const [index, next] of fresh.entries()) {
        // 4 instances are live from its registration until the old one is stopped 2.5 s later:
        // a fair share is 1/4, and "within 2 s" is the second that ends 2.5 s after registering.
        const window = answers.filter(
          (a) => a.at > next.registeredAt + 1_500 && a.at <= next.registeredAt + 2_500,
        )
        expect(window.length, `calls in the window of new instance ${index}`).toBeGreaterThan(100)
        const share = shares(window, [next.id])[next.id]!
        shareAfter2s.push(share)
        expect(
          share,
          `new instance ${index}: share 1.5-2.5 s after registering`,
        ).toBeGreaterThanOrEqual(0.8 / 4)
      }
      console.log(
        `rolling restart: ${answers.length} calls, 0 failed; new instances' shares 1.5-2.5 s after registering: ${shareAfter2s.map((x) => `${(x * 100).toFixed(1)}%`).join(', ')} (fair: 25%)`,
      )
    } finally {
      done = true
      await connection.close()
      for (const instance of [...old, ...fresh]) await instance.process.kill()
    }
  })
})
