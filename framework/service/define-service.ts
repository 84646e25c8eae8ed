import type { AnyRouter, inferRouterContext } from '@trpc/server'
import { initTRPC } from '@trpc/server'
import type { BalancedCall, BalancerSpec, CallsOf } from './balancer-spec.js'
import type { ServiceContext } from './context.js'
import { assertDepOptions } from './dep-options.js'
import { formatServiceError } from './errors.js'
import { type ExposedPaths, type ExposeSpec, resolveExpose } from './expose.js'
import { assertRole } from './role.js'
import type { RouterClient } from './router-client.js'
import { ServiceDefinitionError } from './service-definition-error.js'

/**
 * Per-dependency settings (`deps: { cache: { balancer: 'round-robin' } }`); `TCall` is the union
 * of the dependency's calls, which a `hash` balancer sees typed.
 */
export interface DepOptions<TCall extends BalancedCall = BalancedCall> {
  /**
   * Instance choice per call: `'p2c'` (default), `'round-robin'`, `'random'`, `'least-load'`, or
   * `{ hash: ({ path, input }) => key }` to send calls with the same key to the same instance.
   */
  balancer?: BalancerSpec<TCall>
  /** Default deadline of calls to this dependency in milliseconds; default 10 000. */
  timeoutMs?: number
  /**
   * The most calls to this dependency in flight at once from this process (a bulkhead): beyond
   * it a call fails at once with SERVICE_UNAVAILABLE (FRAMEWORK_ERR_DEPENDENCY_SATURATED), so a
   * slow dependency cannot hold every request of the caller. A whole number >= 1; default: no cap.
   */
  maxInflight?: number
}

/**
 * A service module's default export: everything the runtime needs to boot and register it.
 * `TExposed` is the union of the procedure paths the gateway may reach (`never`: none).
 */
export interface ServiceDefinition<
  TRole extends string = string,
  TRouter extends AnyRouter = AnyRouter,
  TExposed extends string = string,
> {
  readonly kind: 'framework.service'
  /** Name in the phone book. */
  readonly role: TRole
  /** The typed contract: a tRPC router built with `initService()`. */
  readonly router: TRouter
  /** Dependency roles this service calls through `ctx.deps`, with their options. */
  readonly deps: Readonly<Record<string, DepOptions>>
  /** Reported in the phone book record; defaults to the app's package.json version. */
  readonly version: string | undefined
  /** How many instances `framework dev` / compose start; default 1. */
  readonly replicas: number
  /** Fixed port for `framework dev` / compose (one replica per port on a host); default any free port. */
  readonly port: number | undefined
  /** Register (and so be ready) only once every dependency has a live instance; fail after the timeout. */
  readonly waitForDeps: WaitForDeps | undefined
  /** The procedure paths the gateway lets outside callers reach, sorted; empty: none. */
  readonly expose: readonly TExposed[]
}

/** `waitForDeps: true` waits up to 30 s. */
export interface WaitForDeps {
  timeoutMs: number
}

// biome-ignore lint/suspicious/noExplicitAny: the router type parameter is constrained by AnyRouter only
export type AnyServiceDefinition = ServiceDefinition<string, any>

/** The clients `ctx.deps` holds for a map of dependency definitions. */
export type DepsClients<TDeps extends Record<string, AnyServiceDefinition>> = {
  [K in keyof TDeps]: RouterClient<TDeps[K]['router']>
}

/**
 * The tRPC builder of a service. `TDeps` names each dependency role with the *type* of its
 * definition, taken from a type-only import so no other service's code is loaded:
 *
 * ```ts
 * import type cache from '../cache/index.js'
 * const t = initService<{ cache: typeof cache }>()
 * ```
 */
export function initService<TDeps extends Record<string, AnyServiceDefinition> = {}>() {
  return initTRPC.context<ServiceContext<DepsClients<TDeps>>>().create({
    errorFormatter: formatServiceError,
    // Stack traces stay on the server unless explicitly developing.
    isDev: process.env.NODE_ENV === 'development',
  })
}

type DepsOf<TRouter extends AnyRouter> =
  inferRouterContext<TRouter> extends ServiceContext<infer TDeps> ? TDeps : {}

/** `deps` must name exactly the roles the builder was typed with. */
type DepsField<TRouter extends AnyRouter> = [keyof DepsOf<TRouter>] extends [never]
  ? { deps?: Record<string, never> }
  : { deps: { [K in keyof DepsOf<TRouter>]: DepOptions<CallsOf<DepsOf<TRouter>[K]>> | true } }

export type ServiceSpec<
  TRole extends string,
  TRouter extends AnyRouter,
  TExpose extends ExposeSpec<TRouter> = false,
> = {
  role: TRole
  router: TRouter
  version?: string
  replicas?: number
  port?: number
  waitForDeps?: boolean | Partial<WaitForDeps>
  /**
   * Which procedures the gateway (`framework gateway`) lets browsers and other outside callers
   * reach: `true` for all, or their paths (`['get', 'put']`). Default: none.
   */
  expose?: TExpose
} & DepsField<TRouter>

/** Declare a service: its role, its router and the roles it depends on. Validates eagerly. */
export function defineService<
  TRole extends string,
  TRouter extends AnyRouter,
  const TExpose extends ExposeSpec<TRouter> = false,
>(
  spec: ServiceSpec<TRole, TRouter, TExpose>,
): ServiceDefinition<TRole, TRouter, ExposedPaths<TRouter, TExpose>> {
  assertRole(spec.role, 'defineService({ role })')
  const deps: Record<string, DepOptions> = {}
  for (const [role, options] of Object.entries(
    (spec.deps ?? {}) as Record<string, DepOptions | true>,
  )) {
    assertRole(role, `defineService({ role: '${spec.role}', deps })`)
    if (role === spec.role) {
      throw new ServiceDefinitionError(
        `service '${spec.role}' lists itself in deps; remove '${role}' from deps`,
      )
    }
    deps[role] = options === true ? {} : { ...options }
    assertDepOptions(deps[role], `service '${spec.role}', deps.${role}`)
  }
  const replicas = spec.replicas ?? 1
  if (!Number.isInteger(replicas) || replicas < 1) {
    throw new ServiceDefinitionError(
      `invalid replicas ${JSON.stringify(spec.replicas)} for service '${spec.role}': use a whole number >= 1`,
    )
  }
  if (
    spec.port !== undefined &&
    (!Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535)
  ) {
    throw new ServiceDefinitionError(
      `invalid port ${JSON.stringify(spec.port)} for service '${spec.role}': use a whole number 1-65535`,
    )
  }
  const expose = resolveExpose(spec.role, spec.router, spec.expose) as readonly ExposedPaths<
    TRouter,
    TExpose
  >[]
  return Object.freeze({
    kind: 'framework.service' as const,
    role: spec.role,
    router: spec.router,
    deps: Object.freeze(deps),
    version: spec.version,
    replicas,
    port: spec.port,
    waitForDeps: spec.waitForDeps
      ? {
          timeoutMs: (spec.waitForDeps === true ? undefined : spec.waitForDeps.timeoutMs) ?? 30_000,
        }
      : undefined,
    expose,
  })
}

export function isServiceDefinition(value: unknown): value is AnyServiceDefinition {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { kind?: unknown }).kind === 'framework.service'
  )
}
