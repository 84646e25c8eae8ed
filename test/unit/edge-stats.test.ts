import { describe, expect, it } from 'vitest'
import {
  histogramQuantile,
  readScrape,
  scrapeWindow,
} from '../../framework/cli/dev/dashboard/edge-stats.js'

// What the dashboard reads from /metrics: an edge's calls, errors and latency quantiles between
// two scrapes.

/** A /metrics text as prom-client writes it: api's calls to cache, with `buckets` cumulative. */
function exposition(started: number, ok: number, failed: number, buckets: number[]): string {
  const bounds = ['0.001', '0.005', '0.01', '+Inf']
  return [
    '# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.',
    '# TYPE process_start_time_seconds gauge',
    `process_start_time_seconds ${started}`,
    `framework_server_calls_total{procedure="get",kind="query",code="200"} ${ok + failed}`,
    `framework_client_calls_total{role="cache",procedure="get",outcome="ok"} ${ok}`,
    `framework_client_calls_total{role="cache",procedure="get",outcome="unreachable"} ${failed}`,
    ...bounds.map(
      (le, i) =>
        `framework_client_attempt_duration_seconds_bucket{le="${le}",role="cache"} ${buckets[i]}`,
    ),
    `framework_client_attempt_duration_seconds_count{role="cache"} ${buckets[3]}`,
  ].join('\n')
}

describe('edge stats', () => {
  it('histogramQuantile interpolates inside the bucket, as Prometheus does', () => {
    const buckets = new Map([
      [0.001, 10],
      [0.005, 90],
      [0.01, 100],
      [Number.POSITIVE_INFINITY, 100],
    ])
    // Rank 50 is the 40th of 80 in (0.001, 0.005]: halfway.
    expect(histogramQuantile(buckets, 0.5)).toBeCloseTo(0.003, 9)
    // Rank 99 is the 9th of 10 in (0.005, 0.01].
    expect(histogramQuantile(buckets, 0.99)).toBeCloseTo(0.0095, 9)
    expect(histogramQuantile(new Map([[Number.POSITIVE_INFINITY, 0]]), 0.5)).toBeUndefined()
    // Past the last finite bound: that bound.
    expect(
      histogramQuantile(
        new Map([
          [0.01, 1],
          [Number.POSITIVE_INFINITY, 10],
        ]),
        0.99,
      ),
    ).toBe(0.01)
  })

  it('a window holds the calls, failures and latencies between two scrapes; none across a restart', () => {
    const first = readScrape(exposition(1000, 100, 0, [50, 100, 100, 100]), 10_000)!
    const last = readScrape(exposition(1000, 160, 20, [60, 170, 180, 180]), 12_000)!
    const window = scrapeWindow(first, last)!
    expect(window.seconds).toBe(2)
    expect(window.served).toEqual({ calls: 80, errors: 0 })
    const cache = window.dependencies.get('cache')!
    expect(cache.calls).toBe(80)
    expect(cache.errors).toBe(20)
    expect(cache.buckets).toEqual(
      new Map([
        [0.001, 10],
        [0.005, 70],
        [0.01, 80],
        [Number.POSITIVE_INFINITY, 80],
      ]),
    )
    // Rank 40 is the 30th of 60 in (0.001, 0.005].
    expect(histogramQuantile(cache.buckets, 0.5)).toBeCloseTo(0.003, 9)
    const restarted = readScrape(exposition(2000, 5, 0, [5, 5, 5, 5]), 14_000)!
    expect(scrapeWindow(last, restarted)).toBeUndefined()
    expect(readScrape('framework_server_calls_total 3', 1)).toBeUndefined()
  })
})
