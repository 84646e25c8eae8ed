import { once } from 'node:events'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { type MetricSample, parseSamples, sumSamples } from '../../framework/cli/metrics-text.js'
import { createEtcdClient } from '../../framework/registry/etcd-client.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import kitchen from '../fixtures/app/services/kitchen/index.js'
import { startInProcess, withDependencies } from '../support/in-process.js'

// An instance's GET /metrics counts every call it served, on every transport, with bounded
// labels: the exact numbers the test sent, by procedure, kind and status.

const NAMESPACE = 'metrics'
const NAMES = new Set([
  'framework_server_calls_total',
  'framework_server_call_duration_seconds_count',
  'framework_registration_registered',
  'framework_registration_reregistrations_total',
  'framework_etcd_reachable',
  'framework_rpc_streams_open',
  'framework_resolver_instances',
  'process_cpu_user_seconds_total',
])
let etcd: EtcdServer
let running: RunningInstance

beforeAll(async () => {
  etcd = await EtcdServer.start()
  running = await startInProcess(kitchen, etcd.endpoint, NAMESPACE)
})

afterAll(async () => {
  await running?.stop()
  await etcd?.dispose()
})

async function scrape(): Promise<MetricSample[]> {
  const response = await fetch(`${running.instance.url}/metrics`)
  expect(response.status).toBe(200)
  return parseSamples(await response.text(), NAMES)
}

const calls = (samples: MetricSample[], labels: Record<string, string>) =>
  sumSamples(samples, 'framework_server_calls_total', labels)

describe('GET /metrics of an instance', () => {
  it('counts the calls served by procedure, kind and status on the stream, /_rpc and /trpc; unknown paths as `unknown`', async () => {
    let streamsWhileConnected = -1
    for (const stream of [true, false]) {
      await withDependencies(
        etcd.endpoint,
        NAMESPACE,
        ['kitchen'],
        async (deps) => {
          await deps.waitForInstances(5_000)
          const client = deps.clients.get('kitchen')!
          await client.call('add', { n: 0 })
          await expect(client.call('add', { n: 'x' })).rejects.toThrow(/BAD_REQUEST|invalid/i)
          await Promise.all([
            client.call('echo', { text: 'a' }),
            client.call('echo', { text: 'b' }),
          ])
          await expect(client.call('fail', undefined)).rejects.toThrow(/boom|INTERNAL/)
          await client.call('nested.ping', undefined)
          if (stream) {
            const samples = await scrape()
            streamsWhileConnected = sumSamples(samples, 'framework_rpc_streams_open', {
              side: 'server',
            })
          }
        },
        { stream },
      )
    }
    const { url } = running.instance
    // tRPC's adapter: a mutation, a batch of two queries, an unknown procedure, a bad input.
    const post = (path: string, body: string) =>
      fetch(`${url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      }).then((response) => response.text())
    await post('/trpc/add', '{"n":0}')
    await post('/trpc/add', '{"n":"x"}')
    const input = encodeURIComponent(JSON.stringify({ 0: { text: 'c' }, 1: { text: 'd' } }))
    await (await fetch(`${url}/trpc/echo,echo?batch=1&input=${input}`)).text()
    await (await fetch(`${url}/trpc/no.such.thing`)).text()
    // The lean path: unknown procedures, as a query and as a mutation.
    await (await fetch(`${url}/_rpc/nope`)).text()
    await post('/_rpc/nope2', '{}')

    const samples = await scrape()
    expect(streamsWhileConnected).toBe(1)
    expect(calls(samples, { procedure: 'add', kind: 'mutation', code: '200' })).toBe(3)
    expect(calls(samples, { procedure: 'add', kind: 'mutation', code: '400' })).toBe(3)
    expect(calls(samples, { procedure: 'echo', kind: 'query', code: '200' })).toBe(6)
    expect(calls(samples, { procedure: 'fail', kind: 'query', code: '500' })).toBe(2)
    expect(calls(samples, { procedure: 'nested.ping', kind: 'query', code: '200' })).toBe(2)
    expect(calls(samples, { procedure: 'unknown', kind: 'query', code: '404' })).toBe(2)
    expect(calls(samples, { procedure: 'unknown', kind: 'mutation', code: '404' })).toBe(1)
    expect(calls(samples, {})).toBe(19)
    // The histogram saw each call once too.
    expect(
      sumSamples(samples, 'framework_server_call_duration_seconds_count', { procedure: 'echo' }),
    ).toBe(6)
    // No path the service does not have became a label value.
    const procedures = new Set(
      samples
        .filter((sample) => sample.name === 'framework_server_calls_total')
        .map((sample) => sample.labels.procedure),
    )
    expect([...procedures].sort()).toEqual(['add', 'echo', 'fail', 'nested.ping', 'unknown'])
    expect(sumSamples(samples, 'framework_registration_registered')).toBe(1)
    expect(sumSamples(samples, 'framework_etcd_reachable')).toBe(1)
    // No dependencies: no resolver series; prom-client's default process metrics are there.
    expect(samples.filter((sample) => sample.name === 'framework_resolver_instances')).toEqual([])
    expect(samples.some((sample) => sample.name === 'process_cpu_user_seconds_total')).toBe(true)
  })

  it('answers with a query string and to HEAD; other methods get 405; the content type is Prometheus text', async () => {
    const { url } = running.instance
    const withQuery = await fetch(`${url}/metrics?format=text&x=1`)
    expect(withQuery.status).toBe(200)
    expect(withQuery.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(await withQuery.text()).toMatch(/^# HELP framework_server_calls_total /m)
    const head = await fetch(`${url}/metrics`, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(0)
    expect(await head.text()).toBe('')
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const refused = await fetch(`${url}/metrics`, {
        method,
        body: method === 'POST' ? 'x' : null,
      })
      expect(refused.status).toBe(405)
      expect(refused.headers.get('allow')).toBe('GET, HEAD')
      await refused.text()
    }
    // /metrics is not a procedure path: it stays out of the server-call counts.
    const samples = await scrape()
    expect(samples.some((sample) => sample.labels.procedure === 'metrics')).toBe(false)
  })

  it('counts a re-registration: the key deleted by hand, the instance registers again on a new lease', async () => {
    expect(sumSamples(await scrape(), 'framework_registration_reregistrations_total')).toBe(0)
    const { registration, key } = running
    const leaseBefore = registration.leaseId
    const client = createEtcdClient([etcd.endpoint])
    try {
      const lost = once(registration, 'unregistered')
      const back = lost.then(() => once(registration, 'registered'))
      await client.delete().key(key)
      await back
    } finally {
      client.close()
    }
    expect(registration.leaseId).not.toBe(leaseBefore)
    const samples = await scrape()
    expect(sumSamples(samples, 'framework_registration_reregistrations_total')).toBe(1)
    expect(sumSamples(samples, 'framework_registration_registered')).toBe(1)
  })
})
