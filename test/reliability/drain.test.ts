import { connect } from 'node:net'
import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { instanceKey } from '../../framework/registry/record.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import kitchen from '../fixtures/app/services/kitchen/index.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { startInProcess, withDependencies } from '../support/in-process.js'
import { REPO_ROOT } from '../support/instance.js'
import { RawStream } from '../support/raw-stream.js'
import { waitFor } from '../support/wait.js'

// Graceful stops with calls in flight: the instance leaves the phone book first, stops
// accepting, tells stream clients to stop sending (goaway), answers what it was given, exits 0.

const FIXTURE_APP = resolve(REPO_ROOT, 'test/fixtures/app')
const NAMESPACE = 'drain'
/** How long the in-flight request of the signal tests takes: the checks made during it are ordered before its end. */
const SLOW_MS = 5_000

const cluster = useEtcd('drain', 2)

function startKitchen(): Promise<RunningInstance> {
  return startInProcess(kitchen, cluster.etcd.endpoint, NAMESPACE, {
    FRAMEWORK_MAX_BODY_BYTES: '4096',
  })
}

/** Whether a new TCP connection to `url`'s port is refused (nothing listens there any more). */
function refused(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: Number(new URL(url).port) })
    socket.once('connect', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'))
  })
}

describe('draining', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} of framework start: the lease is revoked first; a request arriving while a slow one completes is answered and its connection closed; then the port closes; exit 0`, async () => {
      const ns = cluster.namespace()
      // TTL 10 s: the key can only go this soon by being revoked.
      const instance = cluster.spawn('slow', ns, {
        env: { FRAMEWORK_TTL: '10', FRAMEWORK_LOAD_REFRESH_MS: '100' },
        appRoot: FIXTURE_APP,
      })
      const { url, id } = await instance.listening()
      await instance.waitForLog('registered in etcd')
      const key = instanceKey(ns, 'slow', id)
      let answered = false
      const slow = fetch(
        `${url}/trpc/sleep?input=${encodeURIComponent(JSON.stringify({ ms: SLOW_MS }))}`,
      ).finally(() => {
        answered = true
      })
      // Load figures every 100 ms: the record says when the request is being served.
      await waitFor(
        'the slow request in flight at the instance',
        async () => (await cluster.probe.record(key)).load.inflight >= 1,
      )
      instance.child.kill(signal)
      await waitFor('the key revoked', async () => !(await cluster.probe.has(key)))
      const goneBeforeAnswer = !answered
      // A caller that has not seen the delete yet: answered (not reset), told to close.
      const late = await fetch(
        `${url}/trpc/sleep?input=${encodeURIComponent(JSON.stringify({ ms: 1 }))}`,
      )
      const lateBeforeAnswer = !answered
      const response = await slow
      await waitFor('new connections refused once the calls are answered', () => refused(url))
      expect(goneBeforeAnswer, 'the key went only after the in-flight request was answered').toBe(
        true,
      )
      expect(lateBeforeAnswer, 'the late request was sent while the slow one ran').toBe(true)
      expect(late.status).toBe(200)
      expect(late.headers.get('connection')).toBe('close')
      expect(await late.json()).toMatchObject({ result: { data: { sleptMs: 1 } } })
      expect(response.status).toBe(200)
      expect(await response.json()).toMatchObject({ result: { data: { sleptMs: SLOW_MS } } })
      expect(await instance.exited).toBe(0)
      expect(instance.count('lease revoked, record removed')).toBe(1)
      expect(instance.count('drained in-flight requests')).toBe(1)
    })
  }

  it('stop while 300 mutations are in flight on the stream: goaway sent, the draining instance served some, every mutation answered exactly once, none failed', async () => {
    // One instance stays, one drains: the calls the draining one stops taking go to the other.
    const staying = await startKitchen()
    const draining = await startKitchen()
    try {
      await withDependencies(cluster.etcd.endpoint, NAMESPACE, ['kitchen'], async (deps) => {
        const client = deps.clients.get('kitchen')!
        const resolver = deps.resolvers.get('kitchen')!
        await waitFor('both kitchens listed', () => resolver.endpoints.length === 2, 10_000)
        // Until the draining one has answered: its stream is open, so calls are written to it
        // (calls still waiting for a stream to open to a leaving instance go elsewhere).
        for (let i = 0; i < 200 && !draining.served.snapshot().echo; i++) {
          await client.call('echo', { text: 'warm' })
        }
        // A stream client of the test's own on the draining instance: it must be told goaway.
        const watcher = await RawStream.open(draining.instance.url)
        // Both instances run in this process and share the kitchen's running total.
        const before = ((await client.call('tally', { n: 0 })) as { total: number }).total
        // Slow queries keep the stream busy while the instance drains; mutations go to whichever
        // instance the balancer picks: both are fine as long as none fails.
        const slow = Array.from({ length: 20 }, () => client.call('sleep', { ms: 300 }))
        const mutations = Array.from({ length: 300 }, () => client.call('tally', { n: 1 }))
        const stopping = draining.stop()
        // A stream client is told to stop sending; with nothing in flight it closes (else the
        // drain would wait for it until its timeout).
        const goneAway = await waitFor(
          'a goaway on the test stream',
          () => watcher.goneAway,
          10_000,
        )
          .then(() => true)
          .finally(() => watcher.socket.end())
        const results = await Promise.allSettled([...slow, ...mutations])
        await stopping
        const failed = results.filter((result) => result.status === 'rejected')
        expect(failed.map((result) => String((result as PromiseRejectedResult).reason))).toEqual([])
        const answers = results
          .slice(slow.length)
          .map(
            (result) =>
              (result as PromiseFulfilledResult<{ total: number; instance: string }>).value,
          )
        // Exactly once: 300 distinct running totals, and the total grew by exactly 300.
        expect(new Set(answers.map((answer) => answer.total)).size).toBe(300)
        const after = ((await client.call('tally', { n: 0 })) as { total: number }).total
        expect(after).toBe(before + 300)
        // The fault happened: calls were in flight to the instance that drained.
        const byDraining = answers.filter((answer) => answer.instance === draining.instance.id)
        expect(byDraining.length).toBeGreaterThan(0)
        expect(goneAway).toBe(true)
      })
    } finally {
      await draining.stop()
      await staying.stop()
    }
  })

  // The same stop on both transports: the RPC stream (the instance says goaway) and requests;
  // on the stream, with its connections open, and with them still opening when the stop begins.
  it.each([
    ['over the RPC stream, connections open', { stream: true }, 'open'],
    ['over the RPC stream, connections still opening', { stream: true }, 'opening'],
    ['over requests', { stream: false }, 'open'],
  ] as const)(
    'SIGTERM-style stop while 300 mutations are in flight %s: every mutation answered exactly once, none failed',
    async (_name, transport, connections) => {
      const staying = await startKitchen()
      const draining = await startKitchen()
      let drainingUpgrades = 0
      let drainingRequests = 0
      draining.server.on('upgrade', () => drainingUpgrades++)
      draining.server.on('request', () => drainingRequests++)
      const adds = (instance: RunningInstance) => instance.served.snapshot().add ?? 0
      try {
        await withDependencies(
          cluster.etcd.endpoint,
          NAMESPACE,
          ['kitchen'],
          async (deps) => {
            const client = deps.clients.get('kitchen')!
            // Both instances in the phone book and known to the client: the drained one gets calls.
            await waitFor(
              'both kitchens known to the client',
              () => deps.resolvers.get('kitchen')!.endpoints.length === 2,
              10_000,
            )
            if (connections === 'open') {
              for (let i = 0; i < 200 && !draining.served.snapshot().echo; i++) {
                await client.call('echo', { text: 'warm' })
              }
            }
            const servedBefore = adds(staying) + adds(draining)
            const drainingBefore = adds(draining)
            // Slow queries keep the connections busy while the instance drains; mutations go to
            // whichever instance the balancer picks: both are fine as long as none fails.
            const slow = Array.from({ length: 20 }, () => client.call('sleep', { ms: 300 }))
            const mutations = Array.from({ length: 300 }, () => client.call('add', { n: 1 }))
            const stopping = draining.stop()
            const results = await Promise.allSettled([...slow, ...mutations])
            await stopping
            const failed = results.filter((result) => result.status === 'rejected')
            expect(
              failed.map((result) => String((result as PromiseRejectedResult).reason)),
            ).toEqual([])
            // Exactly once: the two instances (which share the kitchen's running total) ran `add`
            // 300 times between them, and answered 300 consecutive totals.
            expect(adds(staying) + adds(draining) - servedBefore).toBe(300)
            const totals = results
              .slice(slow.length)
              .map((result) => (result as PromiseFulfilledResult<number>).value)
            expect(new Set(totals).size).toBe(300)
            expect(Math.max(...totals) - Math.min(...totals)).toBe(299)
            if (connections === 'open') {
              // The stopped instance had its share: the calls written to it were answered while
              // it drained. (Calls waiting for a connection still opening went elsewhere.)
              expect(adds(draining) - drainingBefore).toBeGreaterThan(0)
            }
            // ...over the transport under test.
            if (transport.stream) {
              expect(drainingRequests).toBe(0)
              // The draining instance was reached: a stream was open or opening to it when the
              // stop began (with "opening", its waiting calls had to go elsewhere).
              expect(drainingUpgrades).toBeGreaterThan(0)
            } else {
              expect(drainingUpgrades).toBe(0)
              expect(drainingRequests).toBeGreaterThan(0)
            }
          },
          transport,
        )
      } finally {
        await draining.stop()
        await staying.stop()
      }
    },
  )
})
