import type { Context, Span } from '@opentelemetry/api'
import { type CallMetadata, TRACEPARENT_KEY, TRACESTATE_KEY } from '../protocol/metadata.js'
import { formatTraceparent, parseTraceparent } from '../protocol/trace-context.js'
import type { Tracing } from './tracing-handle.js'

/**
 * The two spans of a call, parented through call metadata alone: a served call's span is the
 * child of the `traceparent` it came with (or a new trace's root when there is none, or it is
 * invalid), and hands its own `traceparent` to the nested calls (`metadata`); a client call's span
 * is the child of the metadata it is made with and sends its own to every attempt.
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

/** The span context `metadata` names, as a parent (the root context when it names none). */
function parentOf(tracing: Tracing, metadata: CallMetadata): Context {
  const { api } = tracing
  const parent = parseTraceparent(metadata[TRACEPARENT_KEY])
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

/** The span of one served call (SERVER). */
export class ServedCallSpan {
  #onward: CallMetadata | undefined

  constructor(
    private readonly tracing: Tracing,
    private readonly span: Span,
    private readonly incoming: CallMetadata,
  ) {}

  /**
   * The call's metadata with its `traceparent` naming this span: what nested calls carry on.
   * Made on first use: a procedure that calls nothing never pays for it.
   */
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

  /** Ends the span with the call's HTTP status and tRPC body (`{ error: { data: { code } } }`). */
  end(status: number, body?: unknown): void {
    // Not sampled: nothing is recorded, and nothing more to spend on it.
    if (!this.span.isRecording()) return
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
  const span = tracing.tracer.startSpan(
    `${tracing.role}/${path}`,
    { kind: tracing.api.SpanKind.SERVER },
    parentOf(tracing, metadata),
  )
  // The samplers the framework accepts decide on the trace id alone (tracing.ts), so attributes
  // are set only on the spans they keep.
  if (span.isRecording()) {
    span.setAttributes({
      [SPAN_ATTRIBUTES.role]: tracing.role,
      [SPAN_ATTRIBUTES.procedure]: path,
      [SPAN_ATTRIBUTES.kind]: kind,
      'rpc.system': 'framework',
      'rpc.service': tracing.role,
      'rpc.method': path,
    })
  }
  return new ServedCallSpan(tracing, span, metadata)
}

/** The span of one `ctx.deps.<role>.<path>()` call (CLIENT), with an event per attempt. */
export class ClientCallSpan {
  /** The metadata each attempt sends: `traceparent` names this span. */
  readonly metadata: CallMetadata
  #attempts = 0

  constructor(
    private readonly tracing: Tracing,
    private readonly span: Span,
    metadata: CallMetadata,
  ) {
    this.metadata = onwardFrom(span, metadata)
  }

  /**
   * One attempt on `instance`: `retry` is the call's retry count when it was made, `outcome` its
   * HTTP status or the transport failure, `ejected` whether the instance is out of rotation after it.
   */
  attempt(instance: string, retry: number, outcome: number | string, ejected: boolean): void {
    this.#attempts++
    this.span.addEvent(ATTEMPT_EVENT, {
      [SPAN_ATTRIBUTES.instance]: instance,
      [SPAN_ATTRIBUTES.retry]: retry,
      [SPAN_ATTRIBUTES.outcome]: String(outcome),
      [SPAN_ATTRIBUTES.ejected]: ejected,
    })
  }

  /** Ends the span when `call` settles: its tRPC code on failure. */
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

/** A CLIENT span for a call of `role`'s `path`, child of `metadata`'s trace context. */
export function startClientCall(
  tracing: Tracing | undefined,
  role: string,
  path: string,
  metadata: CallMetadata,
): ClientCallSpan | undefined {
  if (tracing === undefined) return undefined
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
    parentOf(tracing, metadata),
  )
  return new ClientCallSpan(tracing, span, metadata)
}
