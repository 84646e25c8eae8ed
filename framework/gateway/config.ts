import { type CallAuthConfig, resolveCallAuth } from '../config/call-auth.js'
import { envDrainTimeoutMs, envInteger, envLogLevel } from '../config/env-values.js'
import { type EtcdAccess, resolveEtcdAccess } from '../config/etcd-access.js'
import { resolveEtcdEndpoints, resolveNamespace } from '../config/phone-book.js'

/** The gateway's settings module at the app root (optional): `export default defineGateway(…)`. */
export const GATEWAY_MODULE = 'gateway.ts'

/** The port the gateway listens on when GATEWAY_PORT is not set. */
export const DEFAULT_GATEWAY_PORT = 8080

/** What the gateway reads from its environment, validated. */
export interface GatewayConfig {
  /** etcd client URLs (`ETCD_ENDPOINTS`). */
  etcdEndpoints: string[]
  /** TLS files and etcd user (`ETCD_CA_FILE`, `ETCD_USERNAME`, ...); undefined for a plain etcd. */
  etcdAccess: EtcdAccess | undefined
  /** Phone book namespace (`FRAMEWORK_NAMESPACE`); default the app's package name. */
  namespace: string
  /** `GATEWAY_PORT`, default 8080; 0 picks a free one. */
  port: number
  /** Address to bind (`HOST`); default all interfaces. */
  host: string
  /** How long SIGTERM waits for requests in progress (`FRAMEWORK_DRAIN_TIMEOUT_MS`). */
  drainTimeoutMs: number
  /** pino level (`LOG_LEVEL`). */
  logLevel: string
  /** Call tokens for the gateway's calls to services (`FRAMEWORK_AUTH`, `FRAMEWORK_SECRET[_FILE]`). */
  callAuth: CallAuthConfig
}

export function loadGatewayConfig(
  env: NodeJS.ProcessEnv,
  defaults: { namespace: string },
): GatewayConfig {
  const etcdEndpoints = resolveEtcdEndpoints(env)
  return {
    etcdEndpoints,
    etcdAccess: resolveEtcdAccess(env, etcdEndpoints),
    namespace: resolveNamespace(env, undefined, () => defaults.namespace),
    port: envInteger(
      env,
      'GATEWAY_PORT',
      DEFAULT_GATEWAY_PORT,
      0,
      65535,
      'a port number 0-65535 (0 = any free port), e.g. GATEWAY_PORT=8080',
    ),
    host: env.HOST || '0.0.0.0',
    drainTimeoutMs: envDrainTimeoutMs(env),
    logLevel: envLogLevel(env),
    callAuth: resolveCallAuth(env),
  }
}
