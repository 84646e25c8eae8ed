import type { CollectedSpan } from './otlp-json.js'

/** One trace in the list: what a row of the dashboard shows. */
export interface TraceSummary {
  traceId: string
  /** The root span's name (the earliest span's when the root has not arrived). */
  name: string
  /** Services with spans in it, in order of first span. */
  services: string[]
  spans: number
  /** Epoch ms of its first span's start. */
  startMs: number
  durationMs: number
  /** Some span ended with status ERROR. */
  error: boolean
}

/**
 * The last `maxTraces` traces, in memory: a trace whose spans stop arriving is dropped, oldest
 * first, once newer ones push it out; a trace holds at most `maxSpansPerTrace` spans (a loop
 * that calls forever must not grow one trace without bound).
 */
export class TraceStore {
  /** By trace id, oldest first (a Map keeps insertion order; a trace that grows moves to the end). */
  readonly #traces = new Map<string, CollectedSpan[]>()

  constructor(
    readonly maxTraces = 200,
    readonly maxSpansPerTrace = 500,
  ) {}

  get size(): number {
    return this.#traces.size
  }

  /** Adds spans of any traces; returns the ids of the traces they touched. */
  add(spans: readonly CollectedSpan[]): string[] {
    const touched = new Set<string>()
    for (const span of spans) {
      let trace = this.#traces.get(span.traceId)
      if (trace) this.#traces.delete(span.traceId)
      else trace = []
      this.#traces.set(span.traceId, trace)
      if (trace.length < this.maxSpansPerTrace) trace.push(span)
      touched.add(span.traceId)
    }
    for (const traceId of this.#traces.keys()) {
      if (this.#traces.size <= this.maxTraces) break
      this.#traces.delete(traceId)
      touched.delete(traceId)
    }
    return [...touched]
  }

  /** The spans of one trace, by start time; undefined when it is not (or no longer) held. */
  get(traceId: string): CollectedSpan[] | undefined {
    const trace = this.#traces.get(traceId)
    return trace && [...trace].sort((a, b) => a.startMs - b.startMs)
  }

  summary(traceId: string): TraceSummary | undefined {
    const spans = this.get(traceId)
    if (!spans || spans.length === 0) return undefined
    const root = spans.find((span) => span.parentSpanId === '') ?? spans[0]!
    const startMs = spans[0]!.startMs
    const endMs = Math.max(...spans.map((span) => span.endMs))
    return {
      traceId,
      name: `${root.service} ${root.name}`,
      services: [...new Set(spans.map((span) => span.service))],
      spans: spans.length,
      startMs,
      durationMs: Math.max(0, endMs - startMs),
      error: spans.some((span) => span.status === 2),
    }
  }

  /** Every trace held, newest (by first span) first. */
  list(): TraceSummary[] {
    const summaries: TraceSummary[] = []
    for (const traceId of this.#traces.keys()) {
      const summary = this.summary(traceId)
      if (summary) summaries.push(summary)
    }
    return summaries.sort((a, b) => b.startMs - a.startMs)
  }
}
