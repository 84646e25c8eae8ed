import { networkInterfaces } from 'node:os'
import { type CallAuthConfig, resolveCallAuth } from '../config/call-auth.js'
import { ConfigError } from '../config/config-error.js'
import { envDrainTimeoutMs, envInteger, envLogLevel } from '../config/env-values.js'
import { type EtcdAccess, resolveEtcdAccess } from '../config/etcd-access.js'
import { resolveEtcdEndpoints, resolveNamespace } from '../config/phone-book.js'

/** Everything an instance reads from its environment, validated (the phone book part by config/). */
export interface RuntimeConfig {
  /** etcd client URLs (`ETCD_ENDPOINTS`). */
  etcdEndpoints: string[]
  /** TLS files and etcd user (`ETCD_CA_FILE`, `ETCD_USERNAME`, ...); undefined for a plain etcd. */
  etcdAccess: EtcdAccess | undefined
  /** Port to listen on; 0 picks a free one (`PORT`). */
  port: number
  /** Address to bind (`HOST`); default all interfaces. */
  host: string
  /** Phone book namespace (`FRAMEWORK_NAMESPACE`); default the app's package name. */
  namespace: string
  /** Lease TTL in seconds (`FRAMEWORK_TTL`). */
  ttlSeconds: number
  /** Fixed advertised base URL (`ADVERTISE_URL`), if any. */
  advertiseUrl: string | undefined
  /** Advertised host name or IP (`ADVERTISE_HOST`); the URL then uses the listening port. */
  advertiseHost: string
  /** Minimum interval between load-figure rewrites (`FRAMEWORK_LOAD_REFRESH_MS`). */
  loadRefreshMs: number
  /** How long shutdown waits for in-flight requests (`FRAMEWORK_DRAIN_TIMEOUT_MS`). */
  drainTimeoutMs: number
  /** Largest accepted request body (`FRAMEWORK_MAX_BODY_BYTES`). */
  maxBodyBytes: number
  /** pino level (`LOG_LEVEL`). */
  logLevel: string
  /** Most calls one fast-path batch may carry (`FRAMEWORK_MAX_BATCH`). */
  maxBatchSize: number
  /**
   * Calls in flight beyond which new ones are answered 503 at once, without running
   * (`FRAMEWORK_MAX_INFLIGHT`); 0: no limit. See DEFAULT_MAX_INFLIGHT.
   */
  maxInflight: number
  /** If set, the listening port is written to this file (container healthchecks read it). */
  portFile: string | undefined
  /** Call tokens (`FRAMEWORK_AUTH`, `FRAMEWORK_SECRET[_FILE]`, `FRAMEWORK_SECRET_PREVIOUS[_FILE]`). */
  callAuth: CallAuthConfig
}

/**
 * On by default, high enough that no ordinary load meets it: one Node thread runs every call, so
 * a thousand calls in flight already queue CPU-bound work for ~100 ms at 0.1 ms each, while each
 * waiting call holds memory; past that, an instance without a limit only gets slower for
 * everyone until it runs out of memory. 1024 matches the RPC stream's per-connection cap, so one
 * caller alone is held back by backpressure before it is shed. Lower it to what one instance
 * serves within its callers' deadlines (see README, Overload); 0 turns shedding off.
 */
export const DEFAULT_MAX_INFLIGHT = 1024

/** The first non-internal IPv4 address of this host (a container's address), else loopback. */
export function defaultAdvertiseHost(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal) return address.address
    }
  }
  return '127.0.0.1'
}

export function loadConfig(env: NodeJS.ProcessEnv, defaults: { namespace: string }): RuntimeConfig {
  const etcdEndpoints = resolveEtcdEndpoints(env)
  const port = envInteger(
    env,
    'PORT',
    0,
    0,
    65535,
    'a port number 0-65535 (0 = any free port), e.g. PORT=3000',
  )
  const ttlSeconds = envInteger(
    env,
    'FRAMEWORK_TTL',
    5,
    2,
    3600,
    'the lease TTL in whole seconds, at least 2 (etcd minimum), e.g. FRAMEWORK_TTL=5',
  )
  const namespace = resolveNamespace(env, undefined, () => defaults.namespace)
  let advertiseUrl: string | undefined
  if (env.ADVERTISE_URL) {
    let url: URL | undefined
    try {
      url = new URL(env.ADVERTISE_URL)
    } catch {}
    if (!url || !['http:', 'https:'].includes(url.protocol) || url.search || url.hash) {
      throw new ConfigError(
        'ADVERTISE_URL',
        env.ADVERTISE_URL,
        'the base URL other services reach this instance at, e.g. ADVERTISE_URL=http://10.0.0.5:3000',
      )
    }
    advertiseUrl = url.href.replace(/\/$/, '')
  }
  const advertiseHost = env.ADVERTISE_HOST || defaultAdvertiseHost()
  if (!/^[A-Za-z0-9.:[\]-]+$/.test(advertiseHost)) {
    throw new ConfigError(
      'ADVERTISE_HOST',
      advertiseHost,
      'a host name or IP address, e.g. ADVERTISE_HOST=127.0.0.1',
    )
  }
  const logLevel = envLogLevel(env)
  return {
    etcdEndpoints,
    etcdAccess: resolveEtcdAccess(env, etcdEndpoints),
    port,
    host: env.HOST || '0.0.0.0',
    namespace,
    ttlSeconds,
    advertiseUrl,
    advertiseHost,
    loadRefreshMs: envInteger(
      env,
      'FRAMEWORK_LOAD_REFRESH_MS',
      5_000,
      100,
      3_600_000,
      'milliseconds between load-figure refreshes, at least 100, e.g. FRAMEWORK_LOAD_REFRESH_MS=5000',
    ),
    drainTimeoutMs: envDrainTimeoutMs(env),
    maxBodyBytes: envInteger(
      env,
      'FRAMEWORK_MAX_BODY_BYTES',
      1024 * 1024,
      1024,
      1024 * 1024 * 1024,
      'the largest request body in bytes, at least 1024, e.g. FRAMEWORK_MAX_BODY_BYTES=1048576',
    ),
    logLevel,
    maxBatchSize: envInteger(
      env,
      'FRAMEWORK_MAX_BATCH',
      128,
      1,
      100_000,
      'the most calls one batch may carry, at least 1, e.g. FRAMEWORK_MAX_BATCH=128',
    ),
    maxInflight: envInteger(
      env,
      'FRAMEWORK_MAX_INFLIGHT',
      DEFAULT_MAX_INFLIGHT,
      0,
      10_000_000,
      'the most calls this instance runs at once before answering 503 (0 = no limit), e.g. FRAMEWORK_MAX_INFLIGHT=1024',
    ),
    portFile: env.FRAMEWORK_PORT_FILE || undefined,
    callAuth: resolveCallAuth(env),
  }
}
