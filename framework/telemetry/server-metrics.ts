import type { Registry } from 'prom-client'
import type { ProcedureKind } from '../protocol/procedure-kind.js'
import {
  BoundCounter,
  type BoundCounterChild,
  BoundHistogram,
  type BoundHistogramChild,
} from './bound-metrics.js'
import { DURATION_BUCKETS, METRIC_PREFIX, UNKNOWN_PROCEDURE } from './metrics.js'

type Label = 'procedure' | 'kind'

/** How a shed call came: the RPC stream, a `/_rpc` request (or batch item), or tRPC at `/trpc`. */
export type ShedTransport = 'stream' | 'rpc' | 'trpc'
const SHED_TRANSPORTS: readonly ShedTransport[] = ['stream', 'rpc', 'trpc']

/** The pre-resolved series of one procedure: no label object is built per call. */
interface ProcedureSeries {
  readonly procedure: string
  readonly kind: string
  readonly duration: BoundHistogramChild
  /** Counter children by HTTP status, made at a status's first use (a handful per procedure). */
  readonly byStatus: Map<number, BoundCounterChild>
}

/**
 * Calls served, whatever the transport (RPC stream, `/_rpc` requests and batches, tRPC at
 * `/trpc`): a counter by procedure, kind and result code (the HTTP status), and a duration
 * histogram by procedure and kind. Only the service's own procedures are label values; any
 * other path counts as `unknown`, so a scanner cannot grow the series.
 */
export class ServerMetrics {
  readonly #calls: BoundCounter<Label | 'code'>
  readonly #duration: BoundHistogram<Label>
  readonly #known = new Map<string, ProcedureSeries>()
  readonly #unknown = new Map<string, ProcedureSeries>()
  /** One child per transport, made up front: a shed costs one increment, and reads 0 until then. */
  readonly #shed = new Map<ShedTransport, BoundCounterChild>()

  constructor(registry: Registry, procedures: Readonly<Record<string, ProcedureKind>>) {
    this.#calls = new BoundCounter({
      name: `${METRIC_PREFIX}server_calls_total`,
      help: 'Calls served, by procedure, kind and result code (HTTP status).',
      labelNames: ['procedure', 'kind', 'code'],
      registers: [registry],
    })
    this.#duration = new BoundHistogram({
      name: `${METRIC_PREFIX}server_call_duration_seconds`,
      help: 'Time from a call reaching the service to its answer, by procedure and kind.',
      labelNames: ['procedure', 'kind'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    })
    const shed = new BoundCounter<'transport'>({
      name: `${METRIC_PREFIX}server_shed_total`,
      help: 'Calls answered 503 without running because the instance was at its in-flight limit (FRAMEWORK_MAX_INFLIGHT), by transport; a /_rpc batch refused whole counts once.',
      labelNames: ['transport'],
      registers: [registry],
    })
    for (const transport of SHED_TRANSPORTS) this.#shed.set(transport, shed.labels(transport))
    for (const [path, kind] of Object.entries(procedures)) {
      this.#known.set(path, this.#series(path, kind))
    }
  }

  /** One call of `path` answered with `status` after `seconds`. */
  observe(path: string, kind: ProcedureKind, status: number, seconds: number): void {
    const series = this.#known.get(path) ?? this.#unknownSeries(kind)
    series.duration.observe(seconds)
    let counter = series.byStatus.get(status)
    if (!counter) {
      counter = this.#calls.labels(series.procedure, series.kind, String(status))
      series.byStatus.set(status, counter)
    }
    counter.inc()
  }

  /** One call (or whole batch) shed at the in-flight limit; it never reached the procedure. */
  shed(transport: ShedTransport): void {
    this.#shed.get(transport)?.inc()
  }

  /** The kind of a known procedure (its manifest's, whatever the request said). */
  kindOf(path: string): ProcedureKind | undefined {
    return this.#known.get(path)?.kind as ProcedureKind | undefined
  }

  #unknownSeries(kind: ProcedureKind): ProcedureSeries {
    // At most two: a bad path sent as a query or as a mutation.
    let series = this.#unknown.get(kind)
    if (!series) {
      series = this.#series(UNKNOWN_PROCEDURE, kind)
      this.#unknown.set(kind, series)
    }
    return series
  }

  #series(procedure: string, kind: string): ProcedureSeries {
    return {
      procedure,
      kind,
      duration: this.#duration.labels(procedure, kind),
      byStatus: new Map(),
    }
  }
}
