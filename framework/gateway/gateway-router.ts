import type {
  AnyMutationProcedure,
  AnyQueryProcedure,
  AnyTRPCRootTypes,
  TRPCBuiltRouter,
} from '@trpc/server'
import type { AnyServiceDefinition } from '../service/define-service.js'

/** The sub-paths of `TPaths` below `TKey` (`'admin.flush'` below `'admin'` is `'flush'`). */
type Below<TPaths extends string, TKey extends string> = TPaths extends `${TKey}.${infer TRest}`
  ? TRest
  : never

/** A router record cut down to the procedures whose dotted paths are in `TPaths`. */
type PickProcedures<TRecord, TPaths extends string> = {
  [K in keyof TRecord & string as K extends TPaths
    ? K
    : [Below<TPaths, K>] extends [never]
      ? never
      : K]: TRecord[K] extends AnyQueryProcedure | AnyMutationProcedure
    ? TRecord[K]
    : PickProcedures<TRecord[K], Below<TPaths, K>>
}

type ExposedOf<TDefinition> = TDefinition extends { expose: readonly (infer TPath)[] }
  ? TPath & string
  : never

/** The root types (error shape, no transformer) of the services' routers: one, from initService. */
type RootTypesOf<TServices> = TServices[keyof TServices] extends {
  router: { _def: { _config: { $types: infer TRoot extends AnyTRPCRootTypes } } }
}
  ? TRoot
  : never

/**
 * The router type a browser app gets through the gateway: one key per role (as it is named
 * in the phone book), holding only the procedures the service exposes.
 *
 * ```ts
 * import type api from '../services/api/index.js' // type-only
 * export type AppRouter = GatewayRouter<{ api: typeof api }>
 * const client = createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: '/trpc' })] })
 * await client.api.get.query({ key: 'a' })
 * ```
 *
 * A key that is not its definition's role, and a role that exposes nothing, are left out (so a
 * call through them is a type error, as a call to a procedure not exposed is).
 */
export type GatewayRouter<TServices extends Record<string, AnyServiceDefinition>> = TRPCBuiltRouter<
  RootTypesOf<TServices>,
  {
    [K in keyof TServices & string as TServices[K]['role'] extends K
      ? [ExposedOf<TServices[K]>] extends [never]
        ? never
        : K
      : never]: PickProcedures<TServices[K]['router']['_def']['record'], ExposedOf<TServices[K]>>
  }
>
