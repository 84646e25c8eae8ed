import type { IncomingHttpHeaders } from 'node:http'
import { TRPCError } from '@trpc/server'
import type { Logger } from 'pino'
import type { Dependencies } from '../client/dependencies.js'
import {
  CALLER_KEY,
  type CallMetadata,
  decodeCaller,
  metadataFromHeaders,
  NO_METADATA,
  propagatedMetadata,
  REQUEST_ID_KEY,
  TRACEPARENT_KEY,
} from '../protocol/metadata.js'
import { parseTraceparent } from '../protocol/trace-context.js'
import type { Caller, InstanceInfo, ServiceContext } from '../service/context.js'
import type { ServedCallSpan } from '../telemetry/spans.js'
import { lazyChild } from './lazy-logger.js'

/**
 * Builds one call's `ctx` from its remaining deadline (ms), its metadata, the procedure it runs
 * (comma-separated for a `/trpc` batch) and its span (when tracing is on).
 */
export type ContextFactory = (
  deadlineMs: number | undefined,
  metadata: CallMetadata,
  procedure?: string,
  span?: ServedCallSpan,
  /** The calling role its call token proved (undefined with call tokens off). */
  callerRole?: string,
) => ServiceContext<unknown>

export interface CallContextOptions {
  instance: InstanceInfo
  log: Logger
  /** Clients of the declared dependencies (undefined when there are none). */
  deps: Dependencies | undefined
}

/** Procedure names (or `/trpc` batch lists) whose child logger is kept, at most. */
const MAX_PROCEDURE_LOGS = 512

/**
 * `ctx` for each call, whatever transport brought it: `ctx.deps` calls end by the caller's
 * deadline and carry its propagating metadata (request id, caller) on to the next service.
 */
export function callContextFactory(options: CallContextOptions): ContextFactory {
  const { instance, log, deps } = options
  const noDeps = {}
  // One child logger per procedure (`/trpc` batches name several: the count is capped).
  const procedureLogs = new Map<string, Logger>()
  const procedureLog = (procedure: string | undefined): Logger => {
    if (procedure === undefined) return log
    let child = procedureLogs.get(procedure)
    if (child === undefined) {
      child = log.child({ procedure })
      if (procedureLogs.size < MAX_PROCEDURE_LOGS) procedureLogs.set(procedure, child)
    }
    return child
  }
  return (deadlineMs, metadata, procedure, span, callerRole) => {
    const deadline = deadlineMs === undefined ? undefined : Date.now() + deadlineMs
    if (metadata === NO_METADATA && span === undefined) {
      // The hot path: no metadata, shared clients when there is no deadline either, and the
      // procedure's logger made once.
      return {
        instance,
        log: procedureLog(procedure),
        deps: deps ? deps.forRequest(deadline) : noDeps,
        requestId: undefined,
        caller: undefined,
        callerRole,
        metadata,
      }
    }
    const requestId = metadata[REQUEST_ID_KEY]
    const callerValue = metadata[CALLER_KEY]
    let caller: Caller | undefined
    if (callerValue !== undefined) {
      caller = decodeCaller(callerValue)
      if (caller === undefined) {
        throw new TRPCError({
          code: 'BAD_REQUEST',
          message: `${CALLER_KEY} is not base64url of a JSON object`,
        })
      }
    }
    return {
      instance,
      log: lazyChild(log, () => callLogFields(procedure, requestId, metadata, span)),
      // Nested calls carry this call's span as their parent when it is traced (its onward
      // metadata is made only here, for a service that has dependencies).
      deps: deps
        ? deps.forRequest(deadline, propagatedMetadata(span ? span.metadata : metadata))
        : noDeps,
      requestId,
      caller,
      callerRole,
      metadata,
    }
  }
}

/**
 * What a call's log lines carry: its procedure, request id and trace (`trace_id`, and `span_id`
 * when this instance traces; otherwise the trace id its caller sent, so logs still join a trace).
 */
function callLogFields(
  procedure: string | undefined,
  requestId: string | undefined,
  metadata: CallMetadata,
  span: ServedCallSpan | undefined,
): Record<string, string> {
  const fields: Record<string, string> = {}
  if (procedure !== undefined) fields.procedure = procedure
  if (requestId !== undefined) fields.requestId = requestId
  if (span) {
    fields.trace_id = span.traceId
    fields.span_id = span.spanId
  } else {
    const incoming = parseTraceparent(metadata[TRACEPARENT_KEY])
    if (incoming) fields.trace_id = incoming.traceId
  }
  return fields
}

/** A request's metadata from its headers; a bad one is the caller's 400. */
export function requestMetadata(headers: IncomingHttpHeaders): CallMetadata {
  const metadata = metadataFromHeaders(headers)
  if (typeof metadata === 'string') throw new TRPCError({ code: 'BAD_REQUEST', message: metadata })
  return metadata
}
