import type {
  AnyMutationProcedure,
  AnyQueryProcedure,
  AnyRouter,
  inferProcedureInput,
  inferTransformedProcedureOutput,
  TRPCRouterRecord,
} from '@trpc/server'

/** Per-call options of a dependency call. */
export interface CallOptions {
  /** Deadline for this call in milliseconds (default: the dependency's, else 10 s). */
  timeoutMs?: number
  /** Abort the call early. */
  signal?: AbortSignal
}

type ProcedureCall<
  TRouter extends AnyRouter,
  TProcedure extends AnyQueryProcedure | AnyMutationProcedure,
> =
  undefined extends inferProcedureInput<TProcedure>
    ? (
        input?: inferProcedureInput<TProcedure>,
        options?: CallOptions,
      ) => Promise<inferTransformedProcedureOutput<TRouter, TProcedure>>
    : (
        input: inferProcedureInput<TProcedure>,
        options?: CallOptions,
      ) => Promise<inferTransformedProcedureOutput<TRouter, TProcedure>>

type DecorateRecord<TRouter extends AnyRouter, TRecord extends TRPCRouterRecord> = {
  [K in keyof TRecord]: TRecord[K] extends AnyQueryProcedure | AnyMutationProcedure
    ? ProcedureCall<TRouter, TRecord[K]>
    : TRecord[K] extends TRPCRouterRecord
      ? DecorateRecord<TRouter, TRecord[K]>
      : never
}

/**
 * The typed client of one service's router: every query and mutation is a plain async function,
 * nested routers are nested objects (`ctx.deps.cache.admin.flush()`).
 */
export type RouterClient<TRouter extends AnyRouter> = DecorateRecord<
  TRouter,
  TRouter['_def']['record']
>
