import { Counter, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { parseSamples, sumSamples } from '../../framework/cli/metrics-text.js'

// The CLI reads /metrics by hand (no prom-client in its one-shots): it must read what prom-client
// writes, escapes included, and skip what it does not ask for.

describe('reading the Prometheus text format', () => {
  it("reads prom-client's own output: labels with escapes, sums by label subset, other metrics skipped", async () => {
    const registry = new Registry()
    const calls = new Counter({
      name: 'demo_calls_total',
      help: 'demo',
      labelNames: ['procedure', 'code'],
      registers: [registry],
    })
    calls.labels('a.b', '200').inc(3)
    calls.labels('say "hi"\\now', '500').inc(2)
    calls.labels('a.b', '404').inc()
    new Counter({ name: 'other_total', help: 'other', registers: [registry] }).inc(7)
    const samples = parseSamples(await registry.metrics(), new Set(['demo_calls_total']))
    expect(samples).toHaveLength(3)
    expect(samples).toContainEqual({
      name: 'demo_calls_total',
      labels: { procedure: 'say "hi"\\now', code: '500' },
      value: 2,
    })
    expect(sumSamples(samples, 'demo_calls_total', { procedure: 'a.b' })).toBe(4)
    expect(sumSamples(samples, 'demo_calls_total')).toBe(6)
    expect(sumSamples(samples, 'other_total')).toBe(0)
  })

  it('skips comments, blank and malformed lines; reads unlabelled samples', () => {
    const text =
      '# HELP x_total h\n# TYPE x_total counter\nx_total 5\n\nx_total{a="1"} NaNx\ngarbage\n'
    expect(parseSamples(text, new Set(['x_total']))).toEqual([
      { name: 'x_total', labels: {}, value: 5 },
    ])
  })
})
