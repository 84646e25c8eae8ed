import { readFileSync, statSync } from 'node:fs'
import { ConfigError } from './config-error.js'

/** How calls between services are authenticated (`FRAMEWORK_AUTH`). */
export type CallAuthMode = 'token' | 'none'

/** The call-token settings of a process, resolved from its environment. */
export interface CallAuthConfig {
  /** `token`: every call carries a token and a call without a valid one is refused (401). */
  mode: CallAuthMode
  /** The namespace secret: signs this process's tokens and checks its callers' tokens. */
  secret: Uint8Array | undefined
  /**
   * The secret before a rotation: tokens signed with it are still accepted, and a callee that
   * still refuses the current one is sent tokens signed with it. Set while instances are
   * restarted one by one onto a new secret; removed once every instance has the new one.
   */
  previousSecret: Uint8Array | undefined
  /** Whether `/metrics` answers without a token (`FRAMEWORK_METRICS_AUTH`; default open). */
  metricsOpen: boolean
}

/** Shortest secret accepted (bytes): HS256 wants a key at least as long as its hash. */
export const MIN_SECRET_BYTES = 32

const SECRET_HINT =
  'at least 32 bytes of random data, e.g. FRAMEWORK_SECRET_FILE=/run/secrets/framework (openssl rand -base64 48 > file; chmod 600 file)'

/**
 * `FRAMEWORK_AUTH`, `FRAMEWORK_SECRET` / `FRAMEWORK_SECRET_FILE`, `FRAMEWORK_SECRET_PREVIOUS` /
 * `FRAMEWORK_SECRET_PREVIOUS_FILE` and `FRAMEWORK_METRICS_AUTH`: the one place they are read.
 * Tokens are on by default whenever a secret is configured. Throws a ConfigError naming the
 * variable and the fix (never the secret itself).
 */
export function resolveCallAuth(env: NodeJS.ProcessEnv): CallAuthConfig {
  const secret = readSecret(env, 'FRAMEWORK_SECRET')
  const previousSecret = readSecret(env, 'FRAMEWORK_SECRET_PREVIOUS')
  const rawMode = env.FRAMEWORK_AUTH || (secret ? 'token' : 'none')
  if (rawMode !== 'token' && rawMode !== 'none') {
    throw new ConfigError(
      'FRAMEWORK_AUTH',
      rawMode,
      'token (calls carry a signed token; needs FRAMEWORK_SECRET or FRAMEWORK_SECRET_FILE) or none',
    )
  }
  if (rawMode === 'token' && !secret) {
    throw new ConfigError(
      'FRAMEWORK_AUTH',
      rawMode,
      `token needs the namespace secret: set FRAMEWORK_SECRET_FILE (or FRAMEWORK_SECRET) to ${SECRET_HINT}`,
    )
  }
  if (previousSecret && !secret) {
    throw new ConfigError(
      'FRAMEWORK_SECRET_PREVIOUS',
      '<set>',
      'it is accepted only beside the current secret: set FRAMEWORK_SECRET_FILE (or FRAMEWORK_SECRET) too',
    )
  }
  const metricsAuth = env.FRAMEWORK_METRICS_AUTH || 'open'
  if (metricsAuth !== 'open' && metricsAuth !== 'token') {
    throw new ConfigError(
      'FRAMEWORK_METRICS_AUTH',
      metricsAuth,
      'open (anyone who reaches the port may scrape /metrics) or token (scrapers send a call token)',
    )
  }
  return {
    mode: rawMode,
    secret,
    previousSecret,
    metricsOpen: rawMode === 'none' || metricsAuth === 'open',
  }
}

/** `<name>` or `<name>_FILE` (not both): the secret's bytes, or undefined when neither is set. */
function readSecret(env: NodeJS.ProcessEnv, name: string): Uint8Array | undefined {
  const fileVariable = `${name}_FILE`
  const inline = env[name]
  const file = env[fileVariable]
  if (inline && file) {
    throw new ConfigError(fileVariable, file, `set ${name} or ${fileVariable}, not both`)
  }
  if (inline) return checkLength(name, '<not shown>', Buffer.from(inline, 'utf8'))
  if (!file) return undefined
  let mode: number
  let bytes: Buffer
  try {
    mode = statSync(file).mode
    bytes = readFileSync(file)
  } catch (err) {
    throw new ConfigError(
      fileVariable,
      file,
      `cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); point it at a file this process can read`,
    )
  }
  if ((mode & 0o007) !== 0) {
    throw new ConfigError(
      fileVariable,
      file,
      `the file is readable by every user (mode ${(mode & 0o777).toString(8)}); chmod 600 it`,
    )
  }
  // A trailing newline (echo, editors) is not part of the secret.
  const text = bytes.toString('utf8').replace(/\r?\n$/, '')
  return checkLength(fileVariable, file, Buffer.from(text, 'utf8'))
}

function checkLength(variable: string, shown: string, secret: Buffer): Uint8Array {
  if (secret.length < MIN_SECRET_BYTES) {
    throw new ConfigError(
      variable,
      shown,
      `the secret is ${secret.length} bytes; use ${SECRET_HINT}`,
    )
  }
  return new Uint8Array(secret)
}
