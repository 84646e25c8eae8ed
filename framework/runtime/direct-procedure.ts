import { TRPCError } from '@trpc/server'
import { getParseFn, isObject, type Parser } from '@trpc/server/unstable-core-do-not-import'
import type { ProcedureKind } from '../protocol/procedure-kind.js'

/** What the invoker hands a procedure: the call's `ctx`, its path and kind, and the raw input. */
export interface DirectCall {
  ctx: unknown
  path: string
  type: ProcedureKind
  input: unknown
  batchIndex: number
}

/**
 * Runs one procedure from its raw input to its data; throws (or rejects with) what the procedure
 * threw. Synchronous parsers and a synchronous resolver give the data itself, no promise; anything
 * async gives a promise.
 */
export type DirectProcedure = (call: DirectCall) => unknown

/** The parts of a tRPC procedure's definition this module reads (tRPC 11's `_def`). */
interface ProcedureDef {
  procedure?: boolean
  type?: string
  inputs?: readonly Parser[]
  middlewares?: readonly ((...args: never[]) => unknown)[] & readonly { _type?: string }[]
  resolver?: (opts: Record<string, unknown>) => unknown
  meta?: unknown
  caller?: unknown
  experimental_caller?: boolean
}

/**
 * The procedure's chain built once, ahead of its calls, for the common shape: only `.input()` parsers and a
 * resolver. tRPC's runner (`callRecursive`) walks the same chain per call, copying its option
 * object at every step and wrapping each result; for a chain of parsers only, that work is pure
 * overhead (it measured ~10× the cost of the parse and the resolver themselves).
 *
 * The semantics are tRPC 11's exactly: each parser is tRPC's own parse function (`getParseFn`), a
 * parse failure is `BAD_REQUEST` with the parser's error as cause, several parsers' object results
 * are merged left to right, and the resolver gets the same options object (`ctx`, `input`, `path`,
 * `type`, `getRawInput`, `signal`, `batchIndex`, `meta`; not `next`, which a resolver has no
 * use for: tRPC's would answer an error result). test/unit/direct-procedure.test.ts runs a
 * corpus through both paths and compares the answers byte for byte.
 *
 * Anything else — a `.use()` middleware, an `.output()` validator, `.errors()`, a caller override,
 * a subscription, or a chain this module does not recognise (a newer tRPC) — returns undefined, and
 * the invoker runs tRPC's own runner for that procedure.
 */
export function directProcedure(procedure: unknown): DirectProcedure | undefined {
  const def = (procedure as { _def?: ProcedureDef } | undefined)?._def
  if (!def?.procedure || (def.type !== 'query' && def.type !== 'mutation')) return undefined
  if (def.caller || def.experimental_caller) return undefined
  const { resolver, middlewares, inputs = [] } = def
  if (typeof resolver !== 'function' || !Array.isArray(middlewares)) return undefined
  // The chain must be exactly: one input middleware per parser, then the resolve middleware
  // tRPC appends last. Counting is enough (and survives a minifier renaming functions): every
  // `.use()`, `.output()` or `.errors()` adds a middleware of its own.
  if (middlewares.length !== inputs.length + 1) return undefined
  for (let i = 0; i < inputs.length; i++) if (middlewares[i]?._type !== 'input') return undefined
  if (middlewares[inputs.length]?._type !== undefined) return undefined

  const parsers = inputs.map((parser) => getParseFn(parser))
  const meta = def.meta
  /** The resolver with the parsed input (tRPC's options object; `getRawInput` async, as tRPC's). */
  const resolve = (
    ctx: unknown,
    path: string,
    type: string,
    raw: unknown,
    batchIndex: number,
    input: unknown,
  ) =>
    resolver({
      ctx,
      path,
      type,
      getRawInput: async () => raw,
      signal: undefined,
      batchIndex,
      meta,
      input,
    })
  /** The parsers from `from` on, awaited: once one parser answered a promise. */
  const parseAsync = async (
    raw: unknown,
    from: number,
    first: PromiseLike<unknown>,
    input: unknown,
  ) => {
    for (let i = from; i < parsers.length; i++) {
      let parsed: unknown
      try {
        parsed = await (i === from ? first : parsers[i]!(raw))
      } catch (cause) {
        throw new TRPCError({ code: 'BAD_REQUEST', cause })
      }
      input = merge(input, parsed)
    }
    return input
  }
  return ({ ctx, path, type, input: raw, batchIndex }) => {
    // The hot path runs without a promise while every parser answers at once (tRPC awaits each:
    // the same values, in the same order).
    let input: unknown
    for (let i = 0; i < parsers.length; i++) {
      let parsed: unknown
      let pending: boolean
      try {
        parsed = parsers[i]!(raw)
        // (Inside the try: a `then` getter that throws is the parser's failure, as in tRPC.)
        pending = isThenable(parsed)
      } catch (cause) {
        throw new TRPCError({ code: 'BAD_REQUEST', cause })
      }
      if (pending) {
        return parseAsync(raw, i, parsed as PromiseLike<unknown>, input).then((parsedInput) =>
          resolve(ctx, path, type, raw, batchIndex, parsedInput),
        )
      }
      input = merge(input, parsed)
    }
    return resolve(ctx, path, type, raw, batchIndex, input)
  }
}

/** Several parsers' object results merged left to right, as tRPC's input middleware does. */
function merge(input: unknown, parsed: unknown): unknown {
  return isObject(input) && isObject(parsed) ? { ...input, ...parsed } : parsed
}

/** Whether `value` is awaited to something else (a promise, or any object with a `then`). */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  )
}
