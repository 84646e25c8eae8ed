import { type Logger, pino } from 'pino'
import { resolveCallAuth } from '../config/call-auth.js'
import type { EtcdAccessChoice } from '../config/etcd-access.js'
import { resolvePhoneBook } from '../config/phone-book.js'
import { createEtcdClient } from '../registry/etcd-client.js'
import { callTokensFor } from '../security/call-tokens.js'
import type { CallsOf } from '../service/balancer-spec.js'
import type { AnyServiceDefinition, DepOptions, DepsClients } from '../service/define-service.js'
import { assertDepOptions } from '../service/dep-options.js'
import { assertRole } from '../service/role.js'
import { Dependencies } from './dependencies.js'
import type { TransportOptions } from './http-transport.js'

export interface ConnectOptions<TDeps extends Record<string, AnyServiceDefinition>> {
  /** The roles to call, with their options (`{ cache: true }`). */
  deps: { [K in keyof TDeps]: DepOptions<CallsOf<DepsClients<TDeps>[K]>> | true }
  /** Default: `ETCD_ENDPOINTS`, else http://127.0.0.1:2379. */
  etcdEndpoints?: string
  /** Default: `FRAMEWORK_NAMESPACE`, else the package name in the current directory. */
  namespace?: string
  /** TLS files and etcd user, winning over `ETCD_CA_FILE`, `ETCD_USERNAME`, ... */
  etcdAccess?: EtcdAccessChoice
  log?: Logger
  /** How calls travel (default: the RPC stream where the service speaks it). */
  transport?: TransportOptions
  /**
   * The role the calls' tokens name as the caller (`ctx.callerRole` in the service) when call
   * tokens are on (FRAMEWORK_SECRET[_FILE] set); default `client`.
   */
  callerRole?: string
  /** Where settings not given here are read from (ETCD_ENDPOINTS, FRAMEWORK_SECRET, …); default process.env. */
  env?: NodeJS.ProcessEnv
}

export interface Connection<TDeps extends Record<string, AnyServiceDefinition>> {
  /** Typed clients, as `ctx.deps` in a service. */
  deps: DepsClients<TDeps>
  /** Resolvers, watches and pools behind `deps`. */
  dependencies: Dependencies
  close(): Promise<void>
}

/**
 * Calls services from outside a service (scripts, CLIs, tests) through the same discovery as
 * `ctx.deps`: `const { deps } = connect<{ cache: typeof cache }>({ deps: { cache: true } })`.
 */
export function connect<TDeps extends Record<string, AnyServiceDefinition>>(
  options: ConnectOptions<TDeps>,
): Connection<TDeps> {
  const env = options.env ?? process.env
  const { etcdEndpoints, etcdAccess, namespace } = resolvePhoneBook(env, {
    etcd: options.etcdEndpoints,
    access: options.etcdAccess,
    namespace: options.namespace,
    appRoot: process.cwd(),
  })
  const deps: Record<string, DepOptions> = {}
  for (const [role, depOptions] of Object.entries(
    options.deps as Record<string, DepOptions | true>,
  )) {
    assertRole(role, 'connect({ deps })')
    deps[role] = depOptions === true ? {} : depOptions
    assertDepOptions(deps[role], `connect({ deps }): deps.${role}`)
  }
  const callerRole = options.callerRole ?? 'client'
  assertRole(callerRole, 'connect({ callerRole })')
  const tokens = callTokensFor(resolveCallAuth(env), callerRole, namespace)
  const etcd = createEtcdClient(etcdEndpoints, etcdAccess)
  const dependencies = new Dependencies({
    etcd,
    etcdEndpoints,
    etcdAccess,
    namespace,
    deps,
    log: options.log ?? pino({ level: env.LOG_LEVEL ?? 'warn' }),
    transport: options.transport,
    tokens,
  })
  return {
    deps: dependencies.forRequest(undefined) as DepsClients<TDeps>,
    dependencies,
    async close() {
      await dependencies.close()
      etcd.close()
    },
  }
}
