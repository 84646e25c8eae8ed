import { afterAll, beforeAll, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { type MetricSample, parseSamples, sumSamples } from '../../framework/cli/metrics-text.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import relay from '../fixtures/app/services/relay/index.js'
import slow from '../fixtures/app/services/slow/index.js'
import { startInProcess } from '../support/in-process.js'
import { waitFor } from '../support/wait.js'

// A caller's /metrics reads its resolver, streams and etcd state at scrape time: one live
// instance of its dependency and one stream to it; with etcd stopped, that instance is stale and
// etcd unreachable (calls still go to it); with etcd back, both recover.

const NAMESPACE = 'metrics-discovery'
const NAMES = new Set([
  'framework_resolver_instances',
  'framework_etcd_reachable',
  'framework_rpc_streams_open',
  'framework_client_calls_total',
])
let etcd: EtcdServer
const running: RunningInstance[] = []

beforeAll(async () => {
  etcd = await EtcdServer.start()
  running.push(await startInProcess(slow, etcd.endpoint, NAMESPACE))
  running.push(await startInProcess(relay, etcd.endpoint, NAMESPACE))
})

afterAll(async () => {
  if (etcd && !etcd.running) await etcd.start()
  for (const instance of running.reverse()) await instance.stop()
  await etcd?.dispose()
})

async function scrape(url: string): Promise<MetricSample[]> {
  const response = await fetch(`${url}/metrics`)
  expect(response.status).toBe(200)
  return parseSamples(await response.text(), NAMES)
}

const instances = (samples: MetricSample[], state: string) =>
  sumSamples(samples, 'framework_resolver_instances', { role: 'slow', state })

async function sleepCall(url: string): Promise<number> {
  const input = encodeURIComponent(JSON.stringify({ ms: 0 }))
  return (await fetch(`${url}/_rpc/sleep?input=${input}`)).status
}

it("the resolver, stream and etcd gauges follow the caller's state, etcd stopped and started included", async () => {
  const url = running[1]!.instance.url
  for (let i = 0; i < 4; i++) expect(await sleepCall(url)).toBe(200)
  const before = await scrape(url)
  expect([
    instances(before, 'live'),
    instances(before, 'ejected'),
    instances(before, 'stale'),
  ]).toEqual([1, 0, 0])
  expect(sumSamples(before, 'framework_etcd_reachable')).toBe(1)
  expect(sumSamples(before, 'framework_rpc_streams_open', { side: 'client' })).toBe(1)
  expect(
    sumSamples(before, 'framework_client_calls_total', {
      role: 'slow',
      procedure: 'sleep',
      outcome: 'ok',
    }),
  ).toBe(4)

  await etcd.stop()
  await waitFor(
    "the relay's metrics to show etcd unreachable and its known instance stale",
    async () => {
      const samples = await scrape(url)
      return (
        sumSamples(samples, 'framework_etcd_reachable') === 0 && instances(samples, 'stale') === 1
      )
    },
    20_000,
  )
  // The last known instance is still called.
  expect(await sleepCall(url)).toBe(200)

  await etcd.start()
  await waitFor(
    "the relay's metrics to show etcd reachable again, nothing stale",
    async () => {
      const samples = await scrape(url)
      return (
        sumSamples(samples, 'framework_etcd_reachable') === 1 && instances(samples, 'stale') === 0
      )
    },
    20_000,
  )
  const after = await scrape(url)
  expect(instances(after, 'live')).toBe(1)
  expect(
    sumSamples(after, 'framework_client_calls_total', {
      role: 'slow',
      procedure: 'sleep',
      outcome: 'ok',
    }),
  ).toBe(5)
}, 60_000)
