import type { Registry } from 'prom-client'

/**
 * Counters and histograms for the per-call hot path, registered in a prom-client Registry as
 * custom metrics (its documented `registerMetric` contract: `name`, `help`, `type`, `get()`).
 *
 * Why not prom-client's own: a child from `labels()` still converts, validates and hashes its
 * label object on every `inc()`/`observe()` — measured at ~5% of a service's CPU at 100
 * concurrent calls (`hashObject`, `incWithoutExemplar`, histogram `observe` in a --cpu-prof), plus
 * the garbage. Here a child is bound once to its label values and its hot path is a few number
 * additions; the exposition is built at scrape time, in prom-client's exact text form (same
 * names, label order `le` first, cumulative buckets, `+Inf`, `_sum`, `_count`).
 */

interface MetricValue {
  labels: Record<string, string | number>
  sharedLabels?: Record<string, string>
  value: number
  metricName?: string
  /** Always null here (no exemplars); present because prom-client's buckets carry the field. */
  exemplar?: null
}

interface MetricData {
  name: string
  help: string
  type: 'counter' | 'histogram'
  aggregator: 'sum'
  values: MetricValue[]
}

interface Options<L extends string> {
  name: string
  help: string
  labelNames: readonly L[]
  registers: readonly Registry[]
}

/** Children by their label values (joined: label values never hold the separator). */
abstract class BoundMetric<L extends string, Child> {
  readonly aggregator = 'sum' as const
  readonly name: string
  readonly help: string
  readonly labelNames: readonly L[]
  protected readonly children = new Map<string, { labels: Record<string, string>; child: Child }>()

  constructor(options: Options<L>) {
    this.name = options.name
    this.help = options.help
    this.labelNames = options.labelNames
    for (const registry of options.registers) registry.registerMetric(this as never)
  }

  /** The child bound to these label values, in `labelNames` order (made on first use). */
  labels(...values: string[]): Child {
    if (values.length !== this.labelNames.length) {
      throw new TypeError(
        `${this.name} takes ${this.labelNames.length} label values (${this.labelNames.join(', ')}), got ${values.length}`,
      )
    }
    const key = values.join('\u0000')
    let entry = this.children.get(key)
    if (!entry) {
      const labels = Object.fromEntries(this.labelNames.map((name, i) => [name, values[i]!]))
      entry = { labels, child: this.create() }
      this.children.set(key, entry)
    }
    return entry.child
  }

  reset(): void {
    this.children.clear()
  }

  protected abstract create(): Child
  /** The values as prom-client's text exposition reads them (series labels as shared labels). */
  abstract getForPromString(): Promise<MetricData>

  /** The values as prom-client's JSON reads them (labels flattened). */
  async get(): Promise<MetricData> {
    const data = await this.getForPromString()
    return {
      ...data,
      values: data.values.map(({ labels, sharedLabels, ...rest }) => ({
        ...rest,
        labels: { ...labels, ...sharedLabels },
      })),
    }
  }
}

export interface BoundCounterChild {
  inc(amount?: number): void
}

class CounterChild implements BoundCounterChild {
  value = 0
  inc(amount = 1): void {
    this.value += amount
  }
}

/** A counter whose children add to a number. */
export class BoundCounter<L extends string> extends BoundMetric<L, BoundCounterChild> {
  readonly type = 'counter' as const

  protected create(): CounterChild {
    return new CounterChild()
  }

  async getForPromString(): Promise<MetricData> {
    const values = [...this.children.values()].map(({ labels, child }) => ({
      labels,
      value: (child as CounterChild).value,
    }))
    return { name: this.name, help: this.help, type: this.type, aggregator: 'sum', values }
  }
}

export interface BoundHistogramChild {
  observe(value: number): void
}

class HistogramChild implements BoundHistogramChild {
  /** Observations per bucket (not cumulative); the last slot is above every bound. */
  readonly counts: number[]
  sum = 0
  count = 0
  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Array(bounds.length + 1).fill(0)
  }
  observe(value: number): void {
    if (!Number.isFinite(value)) return
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    this.counts[i]!++
    this.sum += value
    this.count++
  }
}

/** A histogram whose children count into fixed buckets (`le` upper bounds, ascending). */
export class BoundHistogram<L extends string> extends BoundMetric<L, BoundHistogramChild> {
  readonly type = 'histogram' as const
  readonly buckets: readonly number[]

  constructor(options: Options<L> & { buckets: readonly number[] }) {
    super(options)
    this.buckets = [...options.buckets].sort((a, b) => a - b)
  }

  protected create(): HistogramChild {
    return new HistogramChild(this.buckets)
  }

  async getForPromString(): Promise<MetricData> {
    const values: MetricValue[] = []
    const bucketName = `${this.name}_bucket`
    for (const { labels, child } of this.children.values()) {
      const { counts, sum, count } = child as HistogramChild
      let cumulative = 0
      this.buckets.forEach((le, i) => {
        cumulative += counts[i]!
        values.push({
          labels: { le },
          sharedLabels: labels,
          value: cumulative,
          metricName: bucketName,
          exemplar: null,
        })
      })
      values.push(
        {
          labels: { le: '+Inf' },
          sharedLabels: labels,
          value: count,
          metricName: bucketName,
          exemplar: null,
        },
        { labels: {}, sharedLabels: labels, value: sum, metricName: `${this.name}_sum` },
        { labels: {}, sharedLabels: labels, value: count, metricName: `${this.name}_count` },
      )
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: 'sum', values }
  }
}
