import { Counter, Histogram, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { BoundCounter, BoundHistogram } from '../../framework/telemetry/bound-metrics.js'
import { DURATION_BUCKETS } from '../../framework/telemetry/metrics.js'

// The bound metrics against prom-client's own, fed the same observations: the Prometheus text
// and the JSON of the two registries must be identical, byte for byte.

const OBSERVATIONS = [0, 0.0001, 0.0005, 0.0007, 0.001, 0.02, 0.5, 3, 10, 11, 250, 0.0025]

function both() {
  const theirs = new Registry()
  const ours = new Registry()
  const counterOptions = {
    name: 'x_calls_total',
    help: 'Calls, by procedure and code.',
    labelNames: ['procedure', 'code'] as const,
  }
  const histogramOptions = {
    name: 'x_duration_seconds',
    help: 'Durations.',
    labelNames: ['procedure', 'kind'] as const,
    buckets: DURATION_BUCKETS,
  }
  return {
    theirs,
    ours,
    theirCounter: new Counter({
      ...counterOptions,
      labelNames: [...counterOptions.labelNames],
      registers: [theirs],
    }),
    ourCounter: new BoundCounter({ ...counterOptions, registers: [ours] }),
    theirHistogram: new Histogram({
      ...histogramOptions,
      labelNames: [...histogramOptions.labelNames],
      buckets: [...DURATION_BUCKETS],
      registers: [theirs],
    }),
    ourHistogram: new BoundHistogram({ ...histogramOptions, registers: [ours] }),
  }
}

describe('bound metrics expose exactly what prom-client does', () => {
  it('gives the same text and JSON for the same counts and observations', async () => {
    const m = both()
    // Nothing observed yet: both print only HELP and TYPE.
    expect(await m.ours.metrics()).toBe(await m.theirs.metrics())
    for (const [i, value] of OBSERVATIONS.entries()) {
      const procedure = i % 3 === 0 ? 'get' : 'stats.hits'
      m.theirHistogram.labels(procedure, 'query').observe(value)
      m.ourHistogram.labels(procedure, 'query').observe(value)
      const code = value > 1 ? '500' : '200'
      m.theirCounter.labels(procedure, code).inc()
      m.ourCounter.labels(procedure, code).inc()
    }
    m.theirCounter.labels('get', '200').inc(5)
    m.ourCounter.labels('get', '200').inc(5)
    const text = await m.ours.metrics()
    expect(text).toBe(await m.theirs.metrics())
    expect(text).toContain('x_duration_seconds_bucket{le="0.001",procedure="get",kind="query"} 2')
    expect(await m.ours.getMetricsAsJSON()).toEqual(await m.theirs.getMetricsAsJSON())
  })

  it('refuses a wrong number of label values, naming the labels', () => {
    const { ourCounter } = both()
    expect(() => ourCounter.labels('get')).toThrow(
      /takes 2 label values \(procedure, code\), got 1/,
    )
  })
})
