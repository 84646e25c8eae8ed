import { type AnyRouter, getTRPCErrorFromUnknown, getTRPCErrorShape, TRPCError } from '@trpc/server'
import { getHTTPStatusCodeFromError } from '@trpc/server/http'
import type { Logger } from 'pino'
import { markTokenRefused } from '../protocol/call-token.js'
import { type CallMetadata, NO_METADATA } from '../protocol/metadata.js'
import type { ProcedureKind } from '../protocol/procedure-kind.js'
import { endServedCall, type ServedCallSpan, startServedCall } from '../telemetry/spans.js'
import type { Tracing } from '../telemetry/tracing-handle.js'
import type { CallAuth, CallerCheck } from './call-auth.js'
import { TOKEN_MISSING } from './call-auth.js'
import type { ContextFactory } from './call-context.js'
import { type DirectProcedure, directProcedure, isThenable } from './direct-procedure.js'
import type { LoadSampler } from './load.js'
import type { ServedCalls } from './served-calls.js'

type Procedure = ((opts: {
  ctx: unknown
  path: string
  type: ProcedureKind
  getRawInput: () => Promise<unknown>
  signal: AbortSignal | undefined
  batchIndex: number
}) => Promise<unknown>) & { _def: { type: string } }

export interface InvokerOptions {
  router: AnyRouter
  /** Builds each call's `ctx`; `deadlineMs` is the caller's remaining time, if it sent one. */
  context: ContextFactory
  load: LoadSampler
  /** Counts the calls run, per procedure. */
  served: ServedCalls
  log: Logger
  /** One SERVER span per call, when tracing is on. */
  tracing?: Tracing
  /**
   * Run parser-only procedures through their chain built on first use (direct-procedure.ts) instead of
   * tRPC's runner; default true. False runs every procedure through tRPC's (the differential test
   * compares the two).
   */
  direct?: boolean
  /** Call tokens: when required, a call without a valid one is refused (401) before it runs. */
  auth?: CallAuth
}

/** What a call came to: an HTTP status and a tRPC response body (`{ result }` or `{ error }`). */
export interface Outcome {
  status: number
  body: unknown
}

/**
 * A call's outcome: at once when the procedure finished synchronously (no promise on the hot
 * path), else a promise. Failures are outcomes too: the invoker neither throws nor rejects.
 */
export type OutcomeOrPromise = Outcome | Promise<Outcome>

/** Runs procedures by path the way tRPC's adapters do, for the framework's lean transports. */
export interface Invoker {
  /** Runs one call; never throws or rejects (a failure is an error outcome). */
  call(
    path: string,
    kind: ProcedureKind,
    input: unknown,
    deadlineMs: number | undefined,
    batchIndex: number,
    metadata?: CallMetadata,
    /** What the transport found of the caller's token (call-auth.ts). */
    caller?: CallerCheck,
  ): OutcomeOrPromise
  /** A tRPC error body (shape, status) for a request refused before any procedure ran. */
  refuse(
    code: 'BAD_REQUEST' | 'PAYLOAD_TOO_LARGE' | 'METHOD_NOT_SUPPORTED' | 'SERVICE_UNAVAILABLE',
    message: string,
    path?: string,
  ): Outcome
  /** A call refused for its token (401, marked TOKEN_REFUSED_CODE): nothing ran. */
  refuseToken(message: string, path?: string): Outcome
  /** An unexpected failure as a tRPC error body (logged). */
  fail(cause: unknown, path: string | undefined): Outcome
}

/** The answer when the router's error formatter itself throws (tRPC's shape, by hand). */
const FORMATTER_FAILED: Outcome = {
  status: 500,
  body: {
    error: {
      message: 'internal error (formatting the error failed; see the service log)',
      code: -32603,
      data: { code: 'INTERNAL_SERVER_ERROR', httpStatus: 500 },
    },
  },
}

/** The answer when the invoker itself failed (invokerFailed): tRPC's 500 shape, by hand. */
const INVOKER_FAILED: Outcome = {
  status: 500,
  body: {
    error: {
      message: 'internal error (see the service log)',
      code: -32603,
      data: { code: 'INTERNAL_SERVER_ERROR', httpStatus: 500 },
    },
  },
}

/**
 * Whether a call's outcome is still to come (a promise, or any thenable a wrapper hands back),
 * rather than the outcome itself.
 */
export function settlesLater(outcome: OutcomeOrPromise): outcome is Promise<Outcome> {
  return isThenable(outcome)
}

/**
 * Procedures run with tRPC's semantics: same validation, middleware and `ctx`, same error shapes
 * and statuses as tRPC's adapters — through tRPC's own runner, or, for parser-only procedures,
 * through the same chain built once per procedure (direct-procedure.ts).
 */
export function createInvoker(options: InvokerOptions): Invoker {
  const { router, context, load, served, log, tracing, auth } = options
  const procedures = router._def.procedures as Record<string, Procedure | undefined>
  // Each procedure's run, built on its first call: its direct chain where it has one, else tRPC's
  // own runner.
  const runs = new Map<string, DirectProcedure>()
  function runOf(path: string, procedure: Procedure): DirectProcedure {
    let run = runs.get(path)
    if (!run) {
      run =
        (options.direct !== false && directProcedure(procedure)) ||
        (({ ctx, type, input, batchIndex }) =>
          procedure({
            ctx,
            path,
            type,
            getRawInput: async () => input,
            signal: undefined,
            batchIndex,
          }))
      runs.set(path, run)
    }
    return run
  }
  const config = router._def._config

  function errorOutcome(
    cause: unknown,
    path: string | undefined,
    type: ProcedureKind | 'unknown',
    input: unknown,
    ctx: unknown,
  ): Outcome {
    const error = getTRPCErrorFromUnknown(cause)
    if (error.code === 'INTERNAL_SERVER_ERROR') {
      log.error({ err: error.cause ?? error, path, type }, 'procedure failed')
    }
    try {
      return {
        status: getHTTPStatusCodeFromError(error),
        body: { error: getTRPCErrorShape({ config, error, type, path, input, ctx }) },
      }
    } catch (formatterError) {
      // The router's errorFormatter threw: a fixed 500, never a rejection nobody answers.
      log.error({ err: formatterError, path, type }, 'the error formatter failed')
      return FORMATTER_FAILED
    }
  }

  function refuseToken(message: string, path: string | undefined): Outcome {
    const outcome = errorOutcome(
      new TRPCError({ code: 'UNAUTHORIZED', message }),
      path,
      'unknown',
      undefined,
      undefined,
    )
    return { status: outcome.status, body: markTokenRefused(outcome.body) }
  }

  /**
   * A call with a token to check first: refused (401) before anything else, so a caller without a
   * valid token learns nothing, not even whether the procedure exists. The check of a principal
   * token may wait on a signature; the common case (no principal) answers at once and the call
   * runs on the synchronous path like any other.
   */
  function authorizedCall(
    path: string,
    kind: ProcedureKind,
    input: unknown,
    deadlineMs: number | undefined,
    batchIndex: number,
    metadata: CallMetadata,
    caller: CallerCheck,
    span: ServedCallSpan | undefined,
  ): OutcomeOrPromise {
    if (caller === undefined || typeof caller === 'string') {
      return endServedCall(span, refuseToken(caller ?? TOKEN_MISSING, path))
    }
    let principal: ReturnType<CallAuth['principal']>
    try {
      principal = auth!.principal(metadata, caller)
    } catch (cause) {
      return endServedCall(span, errorOutcome(cause, path, kind, input, undefined))
    }
    if (!isThenable(principal)) {
      return withPrincipal(principal, path, kind, input, deadlineMs, batchIndex, caller, span)
    }
    // (Closures only here, where a signature is awaited.)
    return Promise.resolve(principal).then(
      (checked) => withPrincipal(checked, path, kind, input, deadlineMs, batchIndex, caller, span),
      (cause: unknown) => endServedCall(span, errorOutcome(cause, path, kind, input, undefined)),
    )
  }

  /** The call once its principal is checked: refused (401) with the reason, or run. */
  function withPrincipal(
    principal: CallMetadata | string,
    path: string,
    kind: ProcedureKind,
    input: unknown,
    deadlineMs: number | undefined,
    batchIndex: number,
    caller: CallerCheck,
    span: ServedCallSpan | undefined,
  ): OutcomeOrPromise {
    if (typeof principal === 'string') return endServedCall(span, refuseToken(principal, path))
    return run(path, kind, input, deadlineMs, batchIndex, principal, caller, span)
  }

  /** Runs the procedure: the outcome at once if it finished synchronously, else a promise. */
  function run(
    path: string,
    kind: ProcedureKind,
    input: unknown,
    deadlineMs: number | undefined,
    batchIndex: number,
    metadata: CallMetadata,
    caller: CallerCheck,
    span: ServedCallSpan | undefined,
  ): OutcomeOrPromise {
    let ctx: unknown
    try {
      const procedure = procedures[path]
      if (!procedure || procedure._def.type !== kind) {
        const exists = procedure !== undefined
        throw new TRPCError({
          code: exists ? 'METHOD_NOT_SUPPORTED' : 'NOT_FOUND',
          message: exists
            ? `'${path}' is a ${procedure._def.type}, not a ${kind}`
            : `No procedure found on path "${path}"`,
        })
      }
      ctx = context(
        deadlineMs,
        metadata,
        path,
        span,
        typeof caller === 'object' ? caller.role : undefined,
      )
      const data = runOf(path, procedure)({ ctx, path, type: kind, input, batchIndex })
      if (isThenable(data)) {
        return Promise.resolve(data).then(
          (resolved) => succeeded(span, resolved),
          (cause: unknown) => endServedCall(span, errorOutcome(cause, path, kind, input, ctx)),
        )
      }
      return succeeded(span, data)
    } catch (cause) {
      return endServedCall(span, errorOutcome(cause, path, kind, input, ctx))
    }
  }

  /**
   * A failure of the invoker itself, not of the procedure (a logger, a span or an error formatter
   * that threw where nothing else catches): a fixed 500, built without calling any of them again.
   */
  function invokerFailed(err: unknown, path: string): Outcome {
    try {
      log.error({ err, path }, 'the invoker failed')
    } catch {}
    return INVOKER_FAILED
  }

  /** A call's end: no longer in flight, counted as served; its outcome handed on. */
  function countedOut(path: string, outcome: Outcome): Outcome {
    load.inflight--
    served.count(path)
    return outcome
  }

  return {
    call(path, kind, input, deadlineMs, batchIndex, metadata = NO_METADATA, caller) {
      load.inflight++
      let outcome: OutcomeOrPromise
      try {
        const span = startServedCall(tracing, path, kind, metadata)
        outcome = auth?.required
          ? authorizedCall(path, kind, input, deadlineMs, batchIndex, metadata, caller, span)
          : run(path, kind, input, deadlineMs, batchIndex, metadata, caller, span)
      } catch (err) {
        outcome = invokerFailed(err, path)
      }
      // Every call is counted out once, however it ended.
      if (!settlesLater(outcome)) return countedOut(path, outcome)
      return outcome.then(
        (settled) => countedOut(path, settled),
        (err: unknown) => countedOut(path, invokerFailed(err, path)),
      )
    },
    refuse: (code, message, path) =>
      errorOutcome(new TRPCError({ code, message }), path, 'unknown', undefined, undefined),
    refuseToken,
    fail: (cause, path) => errorOutcome(cause, path, 'unknown', undefined, undefined),
  }
}

/** A procedure's data as its 200 outcome (the span ended). */
function succeeded(span: ServedCallSpan | undefined, data: unknown): Outcome {
  return endServedCall(span, { status: 200, body: { result: { data } } })
}

/** `outcome.body` as JSON; a body JSON cannot encode (a BigInt, a cycle) becomes the 500 it is. */
export function encodeOutcome(
  invoker: Invoker,
  outcome: Outcome,
  path?: string,
): { status: number; text: string } {
  try {
    return { status: outcome.status, text: JSON.stringify(outcome.body) }
  } catch (err) {
    return { status: 500, text: JSON.stringify(invoker.fail(err, path).body) }
  }
}
