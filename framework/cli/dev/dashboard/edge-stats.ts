import { parseSamples, sumSamples } from '../../metrics-text.js'

/*
 * What the dashboard reads from one scrape of an instance's /metrics, and the rates and latency
 * quantiles between two scrapes: the instance's served calls, and its calls to each dependency
 * role (an edge of the topology, from the client-side series).
 */

const SERVED = 'framework_server_calls_total'
const CALLS = 'framework_client_calls_total'
const ATTEMPT_BUCKETS = 'framework_client_attempt_duration_seconds_bucket'
const STARTED = 'process_start_time_seconds'
const NAMES = new Set([SERVED, CALLS, ATTEMPT_BUCKETS, STARTED])

/** An instance's calls to one dependency role, counted since it started. */
export interface DependencyTotals {
  calls: number
  /** Calls whose outcome was not `ok`. */
  errors: number
  /** Attempt durations: cumulative count by upper bound (s), `Infinity` last. */
  buckets: Map<number, number>
}

/** One scrape of one instance. */
export interface InstanceScrape {
  /** When it was read, epoch ms. */
  at: number
  /** process_start_time_seconds: a change means a restart (counters back at zero). */
  startedAt: number
  served: { calls: number; errors: number }
  /** By dependency role. */
  dependencies: Map<string, DependencyTotals>
}

/** The figures the dashboard reads from a /metrics text; undefined without a start time. */
export function readScrape(text: string, at: number): InstanceScrape | undefined {
  const samples = parseSamples(text, NAMES)
  const started = samples.find((sample) => sample.name === STARTED)
  if (!started) return undefined
  const dependencies = new Map<string, DependencyTotals>()
  const totalsOf = (role: string) => {
    let totals = dependencies.get(role)
    if (!totals) {
      totals = { calls: 0, errors: 0, buckets: new Map() }
      dependencies.set(role, totals)
    }
    return totals
  }
  let servedErrors = 0
  for (const sample of samples) {
    const role = sample.labels.role
    if (sample.name === SERVED && Number(sample.labels.code) >= 500) servedErrors += sample.value
    if (sample.name === CALLS && role) {
      const totals = totalsOf(role)
      totals.calls += sample.value
      if (sample.labels.outcome !== 'ok') totals.errors += sample.value
    }
    if (sample.name === ATTEMPT_BUCKETS && role && sample.labels.le) {
      const le = sample.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(sample.labels.le)
      const { buckets } = totalsOf(role)
      buckets.set(le, (buckets.get(le) ?? 0) + sample.value)
    }
  }
  return {
    at,
    startedAt: started.value,
    served: { calls: sumSamples(samples, SERVED), errors: servedErrors },
    dependencies,
  }
}

/**
 * The `q` quantile (0..1) of a cumulative histogram, interpolated linearly inside its bucket as
 * Prometheus' histogram_quantile does; undefined when it counted nothing. One in the +Inf bucket
 * is reported as the highest finite bound.
 */
export function histogramQuantile(buckets: Map<number, number>, q: number): number | undefined {
  const bounds = [...buckets.entries()].sort(([a], [b]) => a - b)
  const total = bounds.at(-1)?.[1] ?? 0
  if (total <= 0) return undefined
  const rank = q * total
  let lower = 0
  let below = 0
  for (const [le, count] of bounds) {
    if (count >= rank) {
      if (le === Number.POSITIVE_INFINITY) return lower
      const inBucket = count - below
      return inBucket <= 0 ? le : lower + ((le - lower) * (rank - below)) / inBucket
    }
    if (le !== Number.POSITIVE_INFINITY) lower = le
    below = count
  }
  return lower
}

/** Between two scrapes of one instance: what happened in that window. */
export interface ScrapeWindow {
  seconds: number
  served: { calls: number; errors: number }
  dependencies: Map<string, DependencyTotals>
}

/** `last` minus `first`; undefined across a restart or a window of no time. */
export function scrapeWindow(
  first: InstanceScrape,
  last: InstanceScrape,
): ScrapeWindow | undefined {
  const seconds = (last.at - first.at) / 1000
  if (seconds <= 0 || first.startedAt !== last.startedAt) return undefined
  const dependencies = new Map<string, DependencyTotals>()
  for (const [role, now] of last.dependencies) {
    const before = first.dependencies.get(role)
    const buckets = new Map<number, number>()
    for (const [le, count] of now.buckets) buckets.set(le, count - (before?.buckets.get(le) ?? 0))
    dependencies.set(role, {
      calls: now.calls - (before?.calls ?? 0),
      errors: now.errors - (before?.errors ?? 0),
      buckets,
    })
  }
  return {
    seconds,
    served: {
      calls: last.served.calls - first.served.calls,
      errors: last.served.errors - first.served.errors,
    },
    dependencies,
  }
}

/** Adds `more` into `into` (the instances of one caller role make one edge). */
export function addTotals(into: DependencyTotals, more: DependencyTotals): void {
  into.calls += more.calls
  into.errors += more.errors
  for (const [le, count] of more.buckets) into.buckets.set(le, (into.buckets.get(le) ?? 0) + count)
}
