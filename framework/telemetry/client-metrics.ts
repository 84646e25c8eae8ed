import { Counter, type Registry } from 'prom-client'
import {
  BoundCounter,
  type BoundCounterChild,
  BoundHistogram,
  type BoundHistogramChild,
} from './bound-metrics.js'
import { DURATION_BUCKETS, METRIC_PREFIX, UNKNOWN_PROCEDURE } from './metrics.js'

/**
 * How a client call ended: `ok`, `error` (the callee answered with an error of its own), or the
 * kind of the framework's failure (`no_instance`, `unreachable`, `timeout`, …).
 */
export type CallOutcome = string

/**
 * The metrics of the calls a process makes to its dependencies. One set of metrics for the
 * process; `forRole` hands each dependency client its pre-resolved series.
 */
export class ClientMetrics {
  readonly calls: BoundCounter<'role' | 'procedure' | 'outcome'>
  readonly attempts: BoundHistogram<'role'>
  readonly retries: Counter<'role'>
  readonly reroutes: Counter<'role'>
  readonly ejections: Counter<'role'>
  readonly budgetExhausted: Counter<'role'>

  constructor(registry: Registry) {
    const registers = [registry]
    this.calls = new BoundCounter({
      name: `${METRIC_PREFIX}client_calls_total`,
      help: 'Calls made to a dependency (ctx.deps), by dependency role, procedure and outcome.',
      labelNames: ['role', 'procedure', 'outcome'],
      registers,
    })
    this.attempts = new BoundHistogram({
      name: `${METRIC_PREFIX}client_attempt_duration_seconds`,
      help: 'Duration of each attempt of a dependency call (a call retried has several), by role.',
      labelNames: ['role'],
      buckets: DURATION_BUCKETS,
      registers,
    })
    this.retries = new Counter({
      name: `${METRIC_PREFIX}client_retries_total`,
      help: 'Attempts repeated on another instance after a failure (spends the retry budget).',
      labelNames: ['role'],
      registers,
    })
    this.reroutes = new Counter({
      name: `${METRIC_PREFIX}client_reroutes_total`,
      help: 'Calls sent to another instance because they never reached the first (no budget spent).',
      labelNames: ['role'],
      registers,
    })
    this.ejections = new Counter({
      name: `${METRIC_PREFIX}client_ejections_total`,
      help: 'Instances taken out of rotation after a connection failure or a 5xx, by role.',
      labelNames: ['role'],
      registers,
    })
    this.budgetExhausted = new Counter({
      name: `${METRIC_PREFIX}client_retry_budget_exhausted_total`,
      help: 'Retries refused because the retry budget was empty, by role.',
      labelNames: ['role'],
      registers,
    })
  }

  /**
   * The series of one dependency role. `serves(path)` says whether the role's instances serve
   * `path` (their phone book records list it): only such paths become label values.
   */
  forRole(role: string, serves: (path: string) => boolean): DependencyMetrics {
    return new DependencyMetrics(this, role, serves)
  }
}

/** One dependency role's series, resolved once: the hot path only increments. */
export class DependencyMetrics {
  readonly #attempts: BoundHistogramChild
  readonly #retries: Counter.Internal
  readonly #reroutes: Counter.Internal
  readonly #ejections: Counter.Internal
  readonly #budgetExhausted: Counter.Internal
  /** Counter children by procedure, then by outcome. */
  readonly #calls = new Map<string, Map<CallOutcome, BoundCounterChild>>()
  readonly #unknown = new Map<CallOutcome, BoundCounterChild>()

  constructor(
    private readonly metrics: ClientMetrics,
    private readonly role: string,
    private readonly serves: (path: string) => boolean,
  ) {
    this.#attempts = metrics.attempts.labels(role)
    this.#retries = metrics.retries.labels(role)
    this.#reroutes = metrics.reroutes.labels(role)
    this.#ejections = metrics.ejections.labels(role)
    this.#budgetExhausted = metrics.budgetExhausted.labels(role)
  }

  /** A call of `path` ended with `outcome`. */
  called(path: string, outcome: CallOutcome): void {
    let byOutcome = this.#calls.get(path)
    if (!byOutcome) {
      // A path no instance serves shares one label value and is not remembered: the series
      // stay bounded by the dependency's manifest whatever the callers send.
      if (!this.serves(path)) {
        this.#count(this.#unknown, UNKNOWN_PROCEDURE, outcome)
        return
      }
      byOutcome = new Map()
      this.#calls.set(path, byOutcome)
    }
    this.#count(byOutcome, path, outcome)
  }

  /** An attempt that started at `startedMs` (performance.now()) has ended. */
  attempted(startedMs: number): void {
    this.#attempts.observe((performance.now() - startedMs) / 1000)
  }

  retried(): void {
    this.#retries.inc()
  }

  rerouted(): void {
    this.#reroutes.inc()
  }

  ejected(): void {
    this.#ejections.inc()
  }

  budgetExhausted(): void {
    this.#budgetExhausted.inc()
  }

  #count(byOutcome: Map<CallOutcome, BoundCounterChild>, procedure: string, outcome: string): void {
    let counter = byOutcome.get(outcome)
    if (!counter) {
      counter = this.metrics.calls.labels(this.role, procedure, outcome)
      byOutcome.set(outcome, counter)
    }
    counter.inc()
  }
}
