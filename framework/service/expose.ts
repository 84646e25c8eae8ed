import type {
  AnyMutationProcedure,
  AnyQueryProcedure,
  AnyRouter,
  TRPCRouterRecord,
} from '@trpc/server'
import { procedureManifest } from './manifest.js'
import { ServiceDefinitionError } from './service-definition-error.js'

/**
 * Every query and mutation path of a router record, dotted for nested routers (`admin.flush`);
 * `string` for a record typed `any` (AnyRouter).
 */
export type ProcedurePaths<TRecord, TPrefix extends string = ''> = 0 extends 1 & TRecord
  ? string
  : {
      [K in keyof TRecord & string]: TRecord[K] extends AnyQueryProcedure | AnyMutationProcedure
        ? `${TPrefix}${K}`
        : TRecord[K] extends TRPCRouterRecord
          ? ProcedurePaths<TRecord[K], `${TPrefix}${K}.`>
          : never
    }[keyof TRecord & string]

/** The paths of a router's queries and mutations. */
export type RouterPaths<TRouter extends AnyRouter> = ProcedurePaths<TRouter['_def']['record']>

/**
 * What a service lets the gateway reach: `true` for every query and mutation, or the paths
 * (`['get', 'admin.flush']`). Anything not listed is unreachable from outside (404).
 */
export type ExposeSpec<TRouter extends AnyRouter> = boolean | readonly RouterPaths<TRouter>[]

/** The paths an `expose` value names, as a type (never when nothing is exposed). */
export type ExposedPaths<TRouter extends AnyRouter, TExpose> = TExpose extends true
  ? RouterPaths<TRouter>
  : TExpose extends readonly (infer TPath extends string)[]
    ? TPath
    : never

/**
 * The sorted procedure paths `expose` names, checked against the router at load: an unknown
 * path or a bad shape is a `ServiceDefinitionError` (FRAMEWORK_ERR_BAD_EXPOSE).
 */
export function resolveExpose(role: string, router: AnyRouter, expose: unknown): readonly string[] {
  const manifest = procedureManifest(router)
  const known = Object.keys(manifest)
  if (expose === undefined || expose === false) return Object.freeze([])
  if (expose === true) return Object.freeze(known)
  const accepted = `use expose: true (every procedure) or a list of its procedure paths (${known.join(', ') || 'it has none'})`
  if (!Array.isArray(expose)) {
    throw new ServiceDefinitionError(
      `service '${role}': invalid expose ${JSON.stringify(expose) ?? typeof expose}; ${accepted}`,
      'FRAMEWORK_ERR_BAD_EXPOSE',
    )
  }
  for (const path of expose) {
    if (typeof path !== 'string' || !Object.hasOwn(manifest, path)) {
      throw new ServiceDefinitionError(
        `service '${role}': expose names ${JSON.stringify(path)}, which is not one of its queries or mutations; ${accepted}`,
        'FRAMEWORK_ERR_BAD_EXPOSE',
      )
    }
  }
  return Object.freeze([...new Set(expose as string[])].sort())
}
