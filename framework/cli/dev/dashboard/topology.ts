import type { Etcd3 } from 'etcd3'
import type { Logger } from 'pino'
import { EtcdResolver } from '../../../discovery/etcd-resolver.js'
import { servicesPrefix } from '../../../registry/record.js'
import { fetchMetrics } from '../../call-rates.js'
import {
  addTotals,
  type DependencyTotals,
  histogramQuantile,
  type InstanceScrape,
  readScrape,
  scrapeWindow,
} from './edge-stats.js'

/** One instance as the dashboard shows it: its phone book record and what its /metrics say. */
export interface InstanceView {
  role: string
  id: string
  url: string
  pid: number
  host: string
  version: string
  contract: string
  /** ISO time it started (the page shows the age). */
  startedAt: string
  load: { inflight: number; cpu: number; rssMiB: number; eventLoopDelayMs: number }
  /** `up`: its last scrape answered; `unreachable`: it did not; `starting`: none yet. */
  health: 'starting' | 'up' | 'unreachable'
  /** Served calls/s and 5xx share over the window; null before two scrapes. */
  callsPerSecond: number | null
  errorRate: number | null
}

/** Calls from one role to another, summed over the caller's instances, over the window. */
export interface EdgeView {
  from: string
  to: string
  callsPerSecond: number
  /** Calls whose outcome was not ok / calls (0 without calls). */
  errorRate: number
  /** Attempt latency quantiles, ms; null without calls in the window. */
  p50Ms: number | null
  p99Ms: number | null
}

export interface TopologyView {
  namespace: string
  /** The phone book could not be read: the instances are the last known ones. */
  stale: boolean
  roles: { role: string; instances: InstanceView[] }[]
  edges: EdgeView[]
  /** Epoch ms of the view. */
  at: number
}

export interface TopologyOptions {
  etcd: Etcd3
  namespace: string
  log: Logger
  /** Declared dependencies by role (the build manifest's): edges shown before any call. */
  deps?: Record<string, readonly string[]>
  scrapeMs?: number
  /** Scrapes the rates and quantiles span (window ≈ scrapeMs × (this - 1)). */
  windowScrapes?: number
}

/** One edge being summed: calls/s over the caller's instances, and their window totals. */
interface EdgeTotals extends DependencyTotals {
  from: string
  to: string
  rate: number
}

const round = (value: number, digits = 2) => Number(value.toFixed(digits))

/**
 * The live topology of a namespace: every instance from a watch of the whole phone book
 * (`/<namespace>/services/`, the resolver `ctx.deps` uses, so wipes and compactions are handled
 * the same way), each scraped every `scrapeMs` for its served calls and its calls to each
 * dependency role. Listeners hear of every change (an instance came or went, a scrape ended).
 */
export class Topology {
  readonly #resolver: EtcdResolver
  /** Recent scrapes per instance id, oldest first. */
  readonly #scrapes = new Map<string, InstanceScrape[]>()
  readonly #health = new Map<string, InstanceView['health']>()
  readonly #listeners = new Set<() => void>()
  readonly #unsubscribe: () => void
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor(private readonly options: TopologyOptions) {
    this.#resolver = new EtcdResolver(options.etcd, 'dashboard', options.namespace, options.log, {
      prefix: servicesPrefix(options.namespace),
    })
    this.#unsubscribe = this.#resolver.subscribe(() => this.#changed())
    this.#schedule(0)
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Resolves once the phone book was listed (the view is then complete). */
  whenListed(timeoutMs: number): Promise<void> {
    return this.#resolver.whenListed(timeoutMs)
  }

  /** Every procedure the live instances list in their records, by role and path. */
  procedures(): { role: string; path: string; kind: string }[] {
    const byName = new Map<string, { role: string; path: string; kind: string }>()
    for (const { record } of this.#resolver.endpoints) {
      for (const [path, kind] of Object.entries(record.procedures)) {
        byName.set(`${record.role}.${path}`, { role: record.role, path, kind })
      }
    }
    return [...byName.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, entry]) => entry)
  }

  view(): TopologyView {
    const roles = new Map<string, InstanceView[]>()
    /** By `from>to`: the callers' windows summed (calls/s add up over the caller's instances). */
    const edges = new Map<string, EdgeTotals>()
    const edgeOf = (from: string, to: string) => {
      const key = `${from}>${to}`
      let edge = edges.get(key)
      if (!edge) {
        edge = { from, to, rate: 0, calls: 0, errors: 0, buckets: new Map() }
        edges.set(key, edge)
      }
      return edge
    }
    for (const [from, tos] of Object.entries(this.options.deps ?? {})) {
      for (const to of tos) edgeOf(from, to)
    }
    for (const endpoint of this.#resolver.endpoints) {
      const { record } = endpoint
      const scrapes = this.#scrapes.get(record.id) ?? []
      const window =
        scrapes.length >= 2 ? scrapeWindow(scrapes[0]!, scrapes[scrapes.length - 1]!) : undefined
      const instance: InstanceView = {
        role: record.role,
        id: record.id,
        url: record.url,
        pid: record.pid,
        host: record.host,
        version: record.version,
        contract: record.contract,
        startedAt: record.startedAt,
        load: {
          inflight: record.load.inflight,
          cpu: round(record.load.cpu),
          rssMiB: Math.round(record.load.rss / 2 ** 20),
          eventLoopDelayMs: round(record.load.eventLoopDelayMs),
        },
        health: this.#health.get(record.id) ?? 'starting',
        callsPerSecond: window ? round(window.served.calls / window.seconds) : null,
        errorRate:
          window && window.served.calls > 0
            ? round(window.served.errors / window.served.calls, 4)
            : window
              ? 0
              : null,
      }
      roles.set(record.role, [...(roles.get(record.role) ?? []), instance])
      for (const [to, totals] of window?.dependencies ?? []) {
        const edge = edgeOf(record.role, to)
        edge.rate += totals.calls / window!.seconds
        addTotals(edge, totals)
      }
    }
    const quantileMs = (buckets: Map<number, number>, q: number) => {
      const seconds = histogramQuantile(buckets, q)
      return seconds === undefined ? null : round(seconds * 1000, 3)
    }
    return {
      namespace: this.options.namespace,
      stale: this.#resolver.stale,
      roles: [...roles.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([role, instances]) => ({
          role,
          instances: instances.sort((a, b) => a.startedAt.localeCompare(b.startedAt)),
        })),
      edges: [...edges.values()]
        .sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to))
        .map((edge) => ({
          from: edge.from,
          to: edge.to,
          callsPerSecond: round(edge.rate),
          errorRate: edge.calls > 0 ? round(edge.errors / edge.calls, 4) : 0,
          p50Ms: edge.calls > 0 ? quantileMs(edge.buckets, 0.5) : null,
          p99Ms: edge.calls > 0 ? quantileMs(edge.buckets, 0.99) : null,
        })),
      at: Date.now(),
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#timer)
    this.#unsubscribe()
    this.#listeners.clear()
    await this.#resolver.close()
  }

  #changed(): void {
    for (const listener of this.#listeners) listener()
  }

  #schedule(delayMs: number): void {
    if (this.#closed) return
    this.#timer = setTimeout(() => void this.#scrapeAll(), delayMs)
  }

  async #scrapeAll(): Promise<void> {
    const endpoints = this.#resolver.endpoints
    await Promise.all(
      endpoints.map(async ({ record }) => {
        const text = await fetchMetrics(record.url)
        const scrape = text === undefined ? undefined : readScrape(text, Date.now())
        this.#health.set(record.id, scrape ? 'up' : 'unreachable')
        if (!scrape) return
        const scrapes = this.#scrapes.get(record.id) ?? []
        // A restart (same id is unlikely, but a new start time) starts the window over.
        if (scrapes.length > 0 && scrapes[0]!.startedAt !== scrape.startedAt) scrapes.length = 0
        scrapes.push(scrape)
        if (scrapes.length > (this.options.windowScrapes ?? 7)) scrapes.shift()
        this.#scrapes.set(record.id, scrapes)
      }),
    )
    // Instances gone from the phone book leave nothing behind.
    const live = new Set(this.#resolver.endpoints.map(({ record }) => record.id))
    for (const id of [...this.#scrapes.keys(), ...this.#health.keys()]) {
      if (!live.has(id)) {
        this.#scrapes.delete(id)
        this.#health.delete(id)
      }
    }
    if (this.#closed) return
    this.#changed()
    this.#schedule(this.options.scrapeMs ?? 1_500)
  }
}
