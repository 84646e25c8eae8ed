import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { ClientMetrics } from '../../framework/telemetry/client-metrics.js'
import { ServerMetrics } from '../../framework/telemetry/server-metrics.js'

// Label values stay bounded: a path the service (or the dependency) does not have is counted
// under one fixed value, never as a new series.

async function labelValues(registry: Registry, metric: string, label: string) {
  const found = (await registry.getMetricsAsJSON()).find((m) => m.name === metric)
  const values = (found?.values ?? []) as { labels: Record<string, string | number> }[]
  return [...new Set(values.map((value) => String(value.labels[label])))].sort()
}

describe('metric labels', () => {
  it('server calls: only manifest procedures are label values; any other path is `unknown`', async () => {
    const registry = new Registry()
    const server = new ServerMetrics(registry, { get: 'query', put: 'mutation' })
    server.observe('get', 'query', 200, 0.001)
    server.observe('put', 'mutation', 400, 0.001)
    for (let i = 0; i < 500; i++) server.observe(`scan/${i}`, i % 2 ? 'query' : 'mutation', 404, 0)
    expect(await labelValues(registry, 'framework_server_calls_total', 'procedure')).toEqual([
      'get',
      'put',
      'unknown',
    ])
    const calls = (await registry.getSingleMetric('framework_server_calls_total')?.get())!.values
    expect(
      calls.find((v) => v.labels.procedure === 'unknown' && v.labels.kind === 'query')?.value,
    ).toBe(250)
    // The kind of a known procedure is its manifest's, whatever the request claimed.
    server.observe('get', 'mutation', 405, 0)
    expect(await labelValues(registry, 'framework_server_calls_total', 'kind')).toEqual([
      'mutation',
      'query',
    ])
    const after = (await registry.getSingleMetric('framework_server_calls_total')?.get())!.values
    expect(after).toHaveLength(5)
  })

  it('client calls: a path the dependency does not serve is `unknown`, and served paths become values', async () => {
    const registry = new Registry()
    const served = new Set(['get'])
    const cache = new ClientMetrics(registry).forRole('cache', (path) => served.has(path))
    cache.called('get', 'ok')
    for (let i = 0; i < 300; i++) cache.called(`junk${i}`, 'unknown_procedure')
    expect(await labelValues(registry, 'framework_client_calls_total', 'procedure')).toEqual([
      'get',
      'unknown',
    ])
    // A procedure the dependency starts serving later (a new contract) gets its own value.
    served.add('stats')
    cache.called('stats', 'ok')
    expect(await labelValues(registry, 'framework_client_calls_total', 'procedure')).toEqual([
      'get',
      'stats',
      'unknown',
    ])
    const values = (await registry.getSingleMetric('framework_client_calls_total')?.get())!.values
    expect(values.find((v) => v.labels.procedure === 'unknown')?.value).toBe(300)
  })
})
