import { expect, it } from 'vitest'
import { API_GET, CallLoop } from '../support/call-loop.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { faultRow } from '../support/fault-summary.js'
import { gatewayReady, spawnGateway } from '../support/gateway-process.js'
import { killAll, type SpawnedInstance, testEnv } from '../support/instance.js'
import { waitFor } from '../support/wait.js'

const TTL = 2
const cluster = useEtcd('gateway-failover', TTL)

it('through the gateway under load: kill -9 of one cache and SIGTERM of one api, 0 failed queries', async () => {
  const row = faultRow(
    'through the gateway: kill -9 of one of 3 caches, then SIGTERM of one of 2 apis, under load',
  )
  const namespace = cluster.namespace()
  const caches = [1, 2, 3].map(() => cluster.spawn('cache', namespace))
  const apis = [1, 2].map(() => cluster.spawn('api', namespace))
  const gateways: SpawnedInstance[] = []
  try {
    // Generous waits: five processes boot at once on two cores.
    for (const instance of [...caches, ...apis]) {
      await instance.waitForLog('registered in etcd', 60_000)
    }
    const gateway = spawnGateway({ ...testEnv(cluster.etcd.endpoint, namespace) })
    gateways.push(gateway)
    const url = (await gateway.waitForLog('listening', 60_000)).url as string
    await gatewayReady(url, 30_000)
    const apiIds = await Promise.all(apis.map(async (api) => (await api.listening()).id))
    const cacheIds = await Promise.all(caches.map(async (cache) => (await cache.listening()).id))
    // The gateway has listed the apis before the load starts.
    await waitFor('calls through the gateway to succeed', async () => {
      const seen = new Set<string>()
      for (let i = 0; i < 20; i++) {
        const response = await fetch(
          `${url}/trpc/api.get?input=${encodeURIComponent('{"key":"w"}')}`,
        )
        seen.add(String(response.status))
      }
      return seen.size === 1 && seen.has('200')
    })
    const loop = new CallLoop(url, 6_000, {
      concurrency: 8,
      maxMs: 40_000,
      pauseMs: 1,
      target: { ...API_GET, path: 'api.get' },
    })
    await loop.reached(800)
    await caches[0]!.kill('SIGKILL')
    const killedAt = Date.now()
    await loop.reached(2_400)
    await apis[0]!.kill('SIGTERM')
    const stoppedAt = Date.now()
    expect(await apis[0]!.exited).toBe(0)
    await loop.done
    const afterKill = loop.samples.filter((sample) => sample.at > killedAt).length
    const afterStop = loop.samples.filter((sample) => sample.at > stoppedAt).length
    // The faults hit instances in use: the killed cache had answered calls, the stopped api
    // had served some (its stopped line counts them).
    const victimCacheServed = loop.samples.filter(
      (sample) => sample.at <= killedAt && sample.servedBy === cacheIds[0],
    ).length
    const stoppedLine = apis[0]!.lines.find((line) => line.event === 'stopped')
    const victimApiServed = (stoppedLine?.served as Record<string, number> | undefined)?.get ?? 0
    // Both left the phone book (the killed cache once its lease expired).
    const keysLeft = async () =>
      (await cluster.probe.client.getAll().prefix(`/${namespace}/services/`).keys()).join('\n')
    await waitFor('both victims out of the phone book', async () => {
      const keys = await keysLeft()
      return !keys.includes(cacheIds[0]!) && !keys.includes(apiIds[0]!)
    })
    const remaining = await keysLeft()
    row.measured({
      calls: loop.samples.length,
      failed: loop.failures.length,
      lost: [cacheIds[0]!, apiIds[0]!].filter((id) => !remaining.includes(id)).length,
      instances: caches.length + apis.length,
      note: `${afterKill} calls after the kill, ${afterStop} after the SIGTERM (api ${apiIds[0]} drained and exited 0); before the faults the killed cache answered ${victimCacheServed} and the stopped api served ${victimApiServed}; gateway routes by role through discovery`,
    })
    expect(loop.failures.slice(0, 5)).toEqual([])
    expect(afterStop).toBeGreaterThan(500)
    expect(victimCacheServed).toBeGreaterThan(0)
    expect(victimApiServed).toBeGreaterThan(0)
    row.passed()
  } finally {
    await killAll(gateways)
  }
}, 120_000)
