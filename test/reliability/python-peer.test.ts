import { spawn } from 'node:child_process'
import { resolve } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { instanceKey } from '../../framework/registry/record.js'
import { contractHash } from '../../framework/service/manifest.js'
import { CallLoop, type CallSample, type LoopTarget } from '../support/call-loop.js'
import { recordFault } from '../support/fault-summary.js'
import { killAll, REPO_ROOT, SpawnedInstance, spawnInstance, testEnv } from '../support/instance.js'
import { PhoneBookProbe } from '../support/phone-book.js'
import { waitFor } from '../support/wait.js'

/**
 * A peer in another language: clients/python-peer/peer.py (Python standard library only)
 * registers itself through etcd's JSON gateway as docs/registry-protocol.md says, and the
 * TypeScript fixture service `greet-relay` calls it through ctx.deps with types from
 * clients/python-peer/contract.ts.
 */

const TTL = 2
const FIXTURE_APP = resolve(REPO_ROOT, 'test/fixtures/app')
const PEER = resolve(REPO_ROOT, 'clients/python-peer/peer.py')
const PYTHON = process.env.PYTHON ?? 'python3'

let etcd: EtcdServer
let probe: PhoneBookProbe
const running: SpawnedInstance[] = []
let namespaceCounter = 0

interface Started {
  instance: SpawnedInstance
  url: string
  id: string
  key: string
}

function env(namespace: string): Record<string, string> {
  return { ...testEnv(etcd.endpoint, namespace), FRAMEWORK_TTL: String(TTL) }
}

/** `python3 peer.py` on 127.0.0.1, an ephemeral port; its JSON log lines are parsed as the runtime's. */
async function startPeer(namespace: string): Promise<Started> {
  const child = spawn(PYTHON, [PEER], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env(namespace), PORT: '0', PYTHONUNBUFFERED: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const instance = new SpawnedInstance(child)
  running.push(instance)
  const { url, id } = await instance.listening()
  await instance.waitForLog('registered in etcd')
  return { instance, url, id, key: instanceKey(namespace, 'greeter', id) }
}

async function startRelay(namespace: string): Promise<Started> {
  const instance = spawnInstance('greet-relay', { appRoot: FIXTURE_APP, env: env(namespace) })
  running.push(instance)
  const { url, id } = await instance.listening()
  await instance.waitForLog('registered in etcd')
  return { instance, url, id, key: instanceKey(namespace, 'greet-relay', id) }
}

// biome-ignore lint/suspicious/noExplicitAny: assertions walk the answer's JSON
type Json = any

async function getJson(url: string): Promise<{ status: number; body: Json }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) })
  return { status: response.status, body: await response.json() }
}

function queryUrl(base: string, path: string, input: unknown): string {
  return `${base}/trpc/${path}?input=${encodeURIComponent(JSON.stringify(input))}`
}

/** One answered call through greet-relay: when, which greeter instance served it, or the failure. */
/** `greet-relay.hello`, answered with the Python instance that greeted. */
const RELAY_HELLO: LoopTarget = {
  path: 'hello',
  input: (n) => ({ name: `w${n}` }),
  servedBy: (data, n) => {
    const answer = data as { message?: string; instance?: string } | undefined
    return answer?.message === `hello, w${n}` ? answer.instance : undefined
  },
}

function countBy(samples: CallSample[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const sample of samples) {
    if (sample.servedBy) counts[sample.servedBy] = (counts[sample.servedBy] ?? 0) + 1
  }
  return counts
}

beforeAll(async () => {
  etcd = await EtcdServer.start()
  probe = new PhoneBookProbe(etcd.endpoint, 'unused')
})

afterEach(async () => {
  await killAll(running)
  if (!etcd.running) await etcd.start()
})

afterAll(async () => {
  probe?.close()
  await etcd?.dispose()
})

describe('a Python peer in the phone book (real etcd, real processes)', () => {
  it('writes a record the framework parses, on a lease of FRAMEWORK_TTL', async () => {
    const namespace = `py-${++namespaceCounter}`
    const peer = await startPeer(namespace)
    const record = await probe.record(peer.key) // parseRecord: throws with the reason if invalid
    expect(record).toMatchObject({
      v: 1,
      role: 'greeter',
      id: peer.id,
      url: peer.url,
      procedures: { greet: 'query' },
      contract: contractHash({ greet: 'query' }),
      load: { inflight: 0, eventLoopDelayMs: 0 },
      pid: peer.instance.pid,
    })
    expect(peer.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(Date.parse(record.startedAt)).toBeGreaterThan(Date.now() - 60_000)
    const lease = await probe.lease(peer.key)
    expect(lease.grantedTtl).toBe(TTL)
    expect(await probe.client.getAll().prefix(`/${namespace}/services/`).keys()).toEqual([peer.key])
    expect((await getJson(`${peer.url}/readyz`)).status).toBe(200)
  })

  it('calls through greet-relay (ctx.deps) reach both Python instances', async () => {
    const namespace = `py-${++namespaceCounter}`
    const peers = await Promise.all([startPeer(namespace), startPeer(namespace)])
    const relay = await startRelay(namespace)
    const loop = new CallLoop(relay.url, 40, { target: RELAY_HELLO, concurrency: 1 })
    await loop.done
    expect(loop.failures).toEqual([])
    expect(loop.samples).toHaveLength(40)
    const served = countBy(loop.samples)
    expect(Object.keys(served).sort()).toEqual(peers.map((peer) => peer.id).sort())
    for (const peer of peers) expect(served[peer.id]).toBeGreaterThanOrEqual(10)
    // Concurrent calls to one instance travel as one /_rpc/_batch request: the peer answers those too.
    const burst = new CallLoop(relay.url, 200, { target: RELAY_HELLO, concurrency: 16 })
    await burst.done
    expect(burst.failures).toEqual([])
    expect(Object.keys(countBy(burst.samples)).sort()).toEqual(peers.map((p) => p.id).sort())
  })

  it('kill -9 of one peer during 1,200 calls: 0 failed calls, record gone within TTL + 1 s, then only the survivor', async () => {
    const namespace = `py-${++namespaceCounter}`
    const [victim, survivor] = await Promise.all([startPeer(namespace), startPeer(namespace)])
    const relay = await startRelay(namespace)
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
      async () => !(await probe.has(victim!.key)),
      TTL * 1000 + 1_000,
    )
    const goneAt = Date.now()
    expect(goneAfterMs).toBeLessThanOrEqual(TTL * 1000 + 1_000)
    expect(await probe.has(survivor!.key)).toBe(true)
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

  it('bad input to the peer itself: 400 with a tRPC error body, 404 for unknown procedures; it stays up', async () => {
    const namespace = `py-${++namespaceCounter}`
    const peer = await startPeer(namespace)

    const wrongType = await getJson(queryUrl(peer.url, 'greet', { name: 3 }))
    expect(wrongType.status).toBe(400)
    expect(wrongType.body.error).toMatchObject({
      code: -32600,
      data: {
        code: 'BAD_REQUEST',
        httpStatus: 400,
        path: 'greet',
        issues: [{ path: ['name'], code: 'invalid_type' }],
      },
    })
    expect(wrongType.body.error.message).toContain('name')

    const missing = await getJson(`${peer.url}/trpc/greet`)
    expect(missing.status).toBe(400)
    expect(missing.body.error.data.issues).toEqual([
      { path: [], code: 'invalid_type', message: expect.stringContaining('expected object') },
    ])

    const notJson = await getJson(`${peer.url}/trpc/greet?input=${encodeURIComponent('{name')}`)
    expect(notJson.status).toBe(400)
    expect(notJson.body.error.data.code).toBe('BAD_REQUEST')

    const tooLong = await getJson(queryUrl(peer.url, 'greet', { name: 'x'.repeat(101) }))
    expect(tooLong.status).toBe(400)
    expect(tooLong.body.error.data.issues[0]).toMatchObject({ path: ['name'], code: 'too_big' })

    const unknown = await getJson(queryUrl(peer.url, 'nope', {}))
    expect(unknown.status).toBe(404)
    expect(unknown.body.error).toMatchObject({
      code: -32004,
      data: { code: 'NOT_FOUND', httpStatus: 404, path: 'nope' },
    })

    const post = await fetch(`${peer.url}/trpc/greet`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'a' }),
    })
    expect(post.status).toBe(405)
    await post.body?.cancel()

    // tRPC batch form: per-call answers, 207 when they differ.
    const batch = await getJson(
      `${peer.url}/trpc/greet,nope?batch=1&input=${encodeURIComponent(JSON.stringify({ 0: { name: 'b' } }))}`,
    )
    expect(batch.status).toBe(207)
    expect(batch.body[0]).toEqual({ result: { data: { message: 'hello, b', instance: peer.id } } })
    expect(batch.body[1].error.data.code).toBe('NOT_FOUND')

    // Still up, still registered, still answering.
    const ok = await getJson(queryUrl(peer.url, 'greet', { name: 'still here' }))
    expect(ok).toEqual({
      status: 200,
      body: { result: { data: { message: 'hello, still here', instance: peer.id } } },
    })
    expect(peer.instance.child.exitCode).toBeNull()
    expect(await probe.has(peer.key)).toBe(true)
  })

  it('a bad input through greet-relay comes back as the peer’s BAD_REQUEST', async () => {
    const namespace = `py-${++namespaceCounter}`
    await startPeer(namespace)
    const relay = await startRelay(namespace)
    const answer = await getJson(queryUrl(relay.url, 'hello', { name: '' }))
    expect(answer.status).toBe(400)
    expect(answer.body.error.data.code).toBe('BAD_REQUEST')
    expect(answer.body.error.message).toContain('Too small')
  })

  it('SIGTERM: revokes the lease (record gone at once, long before the TTL) and exits 0', async () => {
    const namespace = `py-${++namespaceCounter}`
    const peer = await startPeer(namespace)
    const sentAt = Date.now()
    peer.instance.child.kill('SIGTERM')
    expect(await peer.instance.exited).toBe(0)
    expect(await probe.has(peer.key)).toBe(false)
    expect(Date.now() - sentAt).toBeLessThan(TTL * 1000)
    expect(peer.instance.count('lease revoked')).toBe(1)
  })

  it('registers again when its key is deleted, and after etcd was down for longer than the TTL', async () => {
    const namespace = `py-${++namespaceCounter}`
    const peer = await startPeer(namespace)
    const relay = await startRelay(namespace)

    // Someone deletes the key: the peer's own-key watch sees it and puts the record back.
    await probe.client.delete().key(peer.key)
    const backAfterDeleteMs = await waitFor('the record back after a delete', () =>
      probe.has(peer.key),
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
    const oldLease = (await probe.lease(peer.key)).id
    await etcd.stop()
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
    await etcd.start()
    const restartedAt = Date.now()
    await waitFor(
      'the record on a new lease after etcd restarted',
      async () =>
        peer.instance.count('registered in etcd') === 3 &&
        (await probe.lease(peer.key).catch(() => undefined))?.id !== oldLease,
      10_000,
    )
    const reregisteredMs = Date.now() - restartedAt
    expect((await probe.lease(peer.key)).grantedTtl).toBe(TTL)
    await probe.record(peer.key)
    expect((await getJson(`${peer.url}/readyz`)).status).toBe(200)
    // The revived old lease expires without taking the key with it.
    await new Promise((resolve) => setTimeout(resolve, TTL * 1000 + 1_000))
    expect(await probe.has(peer.key)).toBe(true)
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
