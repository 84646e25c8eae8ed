/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` value a call
 * carries, read and written. Pure string work, no OpenTelemetry: the runtime reads it for log
 * lines even when tracing is off, and a bad value must cost a parse, never a failed call.
 */

/** One hop of a trace: the trace, the caller's span in it, and the trace flags. */
export interface TraceContext {
  /** 32 lower-case hex digits, not all zero. */
  readonly traceId: string
  /** 16 lower-case hex digits, not all zero: the span of the hop that sent the value. */
  readonly spanId: string
  /** The 8 trace-flags bits; bit 0 is `sampled`. */
  readonly flags: number
}

/** Longest `traceparent` read: version 00 is 55 characters; later versions may append fields. */
export const MAX_TRACEPARENT_LENGTH = 256
/** Longest `tracestate` carried (the spec's propagation limit). */
export const MAX_TRACESTATE_LENGTH = 512

const VERSION_00_LENGTH = 55
const FIELDS = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/
const ZERO_TRACE = '0'.repeat(32)
const ZERO_SPAN = '0'.repeat(16)

/**
 * The trace context a `traceparent` value names, or undefined when it is invalid (the caller then
 * starts a new trace): version `ff`, all-zero ids, wrong lengths and upper-case hex are invalid;
 * a version above 00 may carry more fields after a `-`, which are ignored.
 */
export function parseTraceparent(value: string | undefined): TraceContext | undefined {
  if (value === undefined || value.length < VERSION_00_LENGTH) return undefined
  if (value.length > MAX_TRACEPARENT_LENGTH) return undefined
  let head = value
  if (value.length > VERSION_00_LENGTH) {
    // Only a later version may be longer, and only by fields after a dash.
    if (value.startsWith('00') || value[VERSION_00_LENGTH] !== '-') return undefined
    head = value.slice(0, VERSION_00_LENGTH)
  }
  const match = FIELDS.exec(head)
  if (!match) return undefined
  const [, version, traceId, spanId, flags] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
  ]
  if (version === 'ff' || traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined
  return { traceId, spanId, flags: Number.parseInt(flags, 16) }
}

/** The version-00 `traceparent` value of a hop (only the `sampled` bit of later flags is kept). */
export function formatTraceparent(context: TraceContext): string {
  const sampled = context.flags & 1 ? '01' : '00'
  return `00-${context.traceId}-${context.spanId}-${sampled}`
}

/** Whether a `tracestate` value may be carried on (printable ASCII within the length limit). */
export function isCarriableTracestate(value: string): boolean {
  return value.length <= MAX_TRACESTATE_LENGTH && /^[\x20-\x7e]*$/.test(value)
}
