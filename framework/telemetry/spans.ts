import type { Context, Span } from '@opentelemetry/api'
import { type CallMetadata, TRACEPARENT_KEY, TRACESTATE_KEY } from '../protocol/metadata.js'
import {
  formatTraceparent,
  parseTraceparent,
  type TraceContext,
} from '../protocol/trace-context.js'
import { type NewTraceId, newRoot, newSpanId } from './sampling.js'
import type { Tracing } from './tracing-handle.js'

/**
 * The two spans of a call, parented through call metadata alone: a served call's span is the
 * child of the `traceparent` it came with (or a new trace's root when there is none, or it is
 * invalid), and hands its own `traceparent` to the nested calls (`metadata`); a client call's span
 * is the child of the metadata it is made with and sends its own to every attempt.
 *
 * The sampling decision comes first (sampling.ts): a dropped call gets no OpenTelemetry span at
 * all, only the ids W3C asks it to pass on (its trace's id, a span id of its own, the sampled flag
 * off), made when something reads them.
 */

/** Span attributes (one place for their names). */
export const SPAN_ATTRIBUTES = {
  role: 'framework.role',
  procedure: 'framework.procedure',
  kind: 'framework.kind',
  code: 'framework.code',
  status: 'http.response.status_code',
  dependency: 'framework.dependency',
  attempts: 'framework.attempts',
  instance: 'framework.instance',
  retry: 'framework.retry',
  outcome: 'framework.outcome',
  ejected: 'framework.ejected',
} as const

/** The name of a client span's event for each attempt. */
export const ATTEMPT_EVENT = 'attempt'

/** The remote span context `parent` names, as a parent (the root context when there is none). */
function parentOf(
  tracing: Tracing,
  parent: TraceContext | undefined,
  metadata: CallMetadata,
): Context {
  const { api } = tracing
  if (parent === undefined) return api.ROOT_CONTEXT
  const state = metadata[TRACESTATE_KEY]
  return api.trace.setSpanContext(api.ROOT_CONTEXT, {
    traceId: parent.traceId,
    spanId: parent.spanId,
    traceFlags: parent.flags,
    isRemote: true,
    traceState: state === undefined ? undefined : api.createTraceState(state),
  })
}

/**
 * Where a call's span starts: its parent (from `metadata`), its trace id (the parent's, or a new
 * one for a root), and whether the sampler keeps it. A kept root's trace id is pinned for the
 * tracer, which then draws exactly that id.
 */
function begin(
  tracing: Tracing,
  metadata: CallMetadata,
): { parent: TraceContext | undefined; traceId: string | NewTraceId; kept: boolean } {
  const parent = parseTraceparent(metadata[TRACEPARENT_KEY])
  if (parent !== undefined) {
    return { parent, traceId: parent.traceId, kept: tracing.sample(parent, parent.traceId) }
  }
  const traceId = newRoot()
  const kept = tracing.sample(undefined, traceId)
  if (kept) tracing.ids.pin(traceId.hex)
  return { parent, traceId, kept }
}

/** A trace id as its hex digits. */
function hexOf(traceId: string | NewTraceId): string {
  return typeof traceId === 'string' ? traceId : traceId.hex
}

/** The onward metadata of a span that is not recorded: its ids, the sampled flag off. */
function unsampledOnward(traceId: string, spanId: string, metadata: CallMetadata): CallMetadata {
  // `tracestate` travels on unchanged (it is already in `metadata`).
  return {
    ...metadata,
    [TRACEPARENT_KEY]: formatTraceparent({ traceId, spanId, flags: 0 }),
  }
}

/** `metadata` with `traceparent` (and `tracestate`) naming `span`: what travels on from it. */
function onwardFrom(span: Span, metadata: CallMetadata): CallMetadata {
  const context = span.spanContext()
  const onward: Record<string, string> = {
    ...metadata,
    [TRACEPARENT_KEY]: formatTraceparent({
      traceId: context.traceId,
      spanId: context.spanId,
      flags: context.traceFlags,
    }),
  }
  const state = context.traceState?.serialize()
  if (state) onward[TRACESTATE_KEY] = state
  return onward
}

/** The span of one served call (SERVER), recorded or not. */
export interface ServedCallSpan {
  /** The call's metadata with its `traceparent` naming this span: what nested calls carry on. */
  readonly metadata: CallMetadata
  readonly traceId: string
  readonly spanId: string
  /** Ends the span with the call's HTTP status and tRPC body (`{ error: { data: { code } } }`). */
  end(status: number, body?: unknown): void
}

/** A served call the sampler kept: an OpenTelemetry span, exported when it ends. */
class RecordedServedSpan implements ServedCallSpan {
  #onward: CallMetadata | undefined

  constructor(
    private readonly tracing: Tracing,
    private readonly span: Span,
    private readonly incoming: CallMetadata,
  ) {}

  /** Made on first use: a procedure that calls nothing never pays for it. */
  get metadata(): CallMetadata {
    this.#onward ??= onwardFrom(this.span, this.incoming)
    return this.#onward
  }

  get traceId(): string {
    return this.span.spanContext().traceId
  }

  get spanId(): string {
    return this.span.spanContext().spanId
  }

  end(status: number, body?: unknown): void {
    const code =
      (body as { error?: { data?: { code?: unknown } } } | undefined)?.error?.data?.code ??
      (status < 300 ? 'OK' : undefined)
    this.span.setAttribute(SPAN_ATTRIBUTES.status, status)
    if (typeof code === 'string') this.span.setAttribute(SPAN_ATTRIBUTES.code, code)
    // A server's 4xx is the caller's mistake, not this span's failure.
    if (status >= 500) this.span.setStatus({ code: this.tracing.api.SpanStatusCode.ERROR })
    this.span.end()
  }
}

/** A served call the sampler dropped: ids only, its span id drawn when first read. */
class UnsampledServedSpan implements ServedCallSpan {
  #spanId: string | undefined
  #onward: CallMetadata | undefined

  constructor(
    private readonly trace: string | NewTraceId,
    private readonly incoming: CallMetadata,
  ) {}

  get traceId(): string {
    return hexOf(this.trace)
  }

  get spanId(): string {
    this.#spanId ??= newSpanId()
    return this.#spanId
  }

  get metadata(): CallMetadata {
    this.#onward ??= unsampledOnward(this.traceId, this.spanId, this.incoming)
    return this.#onward
  }

  end(): void {}
}

/** `outcome`, after ending `span` (if any) with it: the invoker's return, traced. */
export function endServedCall<T extends { status: number; body: unknown }>(
  span: ServedCallSpan | undefined,
  outcome: T,
): T {
  span?.end(outcome.status, outcome.body)
  return outcome
}

/** A SERVER span for a call of `path` (undefined when tracing is off: the hot path). */
export function startServedCall(
  tracing: Tracing | undefined,
  path: string,
  kind: string,
  metadata: CallMetadata,
): ServedCallSpan | undefined {
  if (tracing === undefined) return undefined
  const { parent, traceId, kept } = begin(tracing, metadata)
  if (!kept) return new UnsampledServedSpan(traceId, metadata)
  const span = tracing.tracer.startSpan(
    `${tracing.role}/${path}`,
    {
      kind: tracing.api.SpanKind.SERVER,
      attributes: {
        [SPAN_ATTRIBUTES.role]: tracing.role,
        [SPAN_ATTRIBUTES.procedure]: path,
        [SPAN_ATTRIBUTES.kind]: kind,
        'rpc.system': 'framework',
        'rpc.service': tracing.role,
        'rpc.method': path,
      },
    },
    parentOf(tracing, parent, metadata),
  )
  return new RecordedServedSpan(tracing, span, metadata)
}

/** The span of one `ctx.deps.<role>.<path>()` call (CLIENT), with an event per attempt. */
export interface ClientCallSpan {
  /** The metadata each attempt sends: `traceparent` names this span. */
  readonly metadata: CallMetadata
  /**
   * One attempt on `instance`: `retry` is the call's retry count when it was made, `outcome` its
   * HTTP status or the transport failure, `ejected` whether the instance is out of rotation after it.
   */
  attempt(instance: string, retry: number, outcome: number | string, ejected: boolean): void
  /** Ends the span when `call` settles: its tRPC code on failure. */
  track<T>(call: Promise<T>): Promise<T>
}

/** A client call the sampler kept: an OpenTelemetry span, exported when it ends. */
class RecordedClientSpan implements ClientCallSpan {
  readonly metadata: CallMetadata
  #attempts = 0

  constructor(
    private readonly tracing: Tracing,
    private readonly span: Span,
    metadata: CallMetadata,
  ) {
    this.metadata = onwardFrom(span, metadata)
  }

  attempt(instance: string, retry: number, outcome: number | string, ejected: boolean): void {
    this.#attempts++
    this.span.addEvent(ATTEMPT_EVENT, {
      [SPAN_ATTRIBUTES.instance]: instance,
      [SPAN_ATTRIBUTES.retry]: retry,
      [SPAN_ATTRIBUTES.outcome]: String(outcome),
      [SPAN_ATTRIBUTES.ejected]: ejected,
    })
  }

  async track<T>(call: Promise<T>): Promise<T> {
    try {
      const result = await call
      this.span.setAttribute(SPAN_ATTRIBUTES.code, 'OK')
      return result
    } catch (err) {
      const code = (err as { code?: unknown }).code
      if (typeof code === 'string') this.span.setAttribute(SPAN_ATTRIBUTES.code, code)
      this.span.setStatus({
        code: this.tracing.api.SpanStatusCode.ERROR,
        message: (err as Error).message,
      })
      throw err
    } finally {
      this.span.setAttribute(SPAN_ATTRIBUTES.attempts, this.#attempts)
      this.span.end()
    }
  }
}

/** A client call the sampler dropped: the onward ids only (every attempt sends them). */
class UnsampledClientSpan implements ClientCallSpan {
  readonly metadata: CallMetadata

  constructor(traceId: string, metadata: CallMetadata) {
    this.metadata = unsampledOnward(traceId, newSpanId(), metadata)
  }

  attempt(): void {}

  track<T>(call: Promise<T>): Promise<T> {
    return call
  }
}

/** A CLIENT span for a call of `role`'s `path`, child of `metadata`'s trace context. */
export function startClientCall(
  tracing: Tracing | undefined,
  role: string,
  path: string,
  metadata: CallMetadata,
): ClientCallSpan | undefined {
  if (tracing === undefined) return undefined
  const { parent, traceId, kept } = begin(tracing, metadata)
  if (!kept) return new UnsampledClientSpan(hexOf(traceId), metadata)
  const span = tracing.tracer.startSpan(
    `${role}/${path}`,
    {
      kind: tracing.api.SpanKind.CLIENT,
      attributes: {
        [SPAN_ATTRIBUTES.role]: tracing.role,
        [SPAN_ATTRIBUTES.dependency]: role,
        [SPAN_ATTRIBUTES.procedure]: path,
        'rpc.system': 'framework',
        'rpc.service': role,
        'rpc.method': path,
      },
    },
    parentOf(tracing, parent, metadata),
  )
  return new RecordedClientSpan(tracing, span, metadata)
}
