import { ConfigError } from './config-error.js'

/** pino's levels, as `LOG_LEVEL` accepts them. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

/** A whole number from `env[variable]` in [min, max], else `fallback` when unset or empty. */
export function envInteger(
  env: NodeJS.ProcessEnv,
  variable: string,
  fallback: number,
  min: number,
  max: number,
  accepted: string,
): number {
  const raw = env[variable]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(variable, raw, accepted)
  }
  return value
}

/** `LOG_LEVEL`, default `info`. */
export function envLogLevel(env: NodeJS.ProcessEnv): string {
  const logLevel = env.LOG_LEVEL || 'info'
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', logLevel, `one of ${LOG_LEVELS.join(', ')}`)
  }
  return logLevel
}

/** `FRAMEWORK_DRAIN_TIMEOUT_MS`: how long SIGTERM waits for in-flight requests. */
export function envDrainTimeoutMs(env: NodeJS.ProcessEnv): number {
  return envInteger(
    env,
    'FRAMEWORK_DRAIN_TIMEOUT_MS',
    10_000,
    0,
    3_600_000,
    'milliseconds shutdown waits for in-flight requests, e.g. FRAMEWORK_DRAIN_TIMEOUT_MS=10000',
  )
}
