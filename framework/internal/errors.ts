import type { TRPC_ERROR_CODE_KEY } from '@trpc/server/rpc'

/**
 * Every error a user or a caller can meet, by its stable code: the exit code of a CLI command
 * that stops on it and, for errors of a call, the tRPC code (and so the HTTP status) it carries.
 * Codes never change meaning; new ones are added here.
 */
export const ERROR_CODES = {
  /** A setting (environment variable or its CLI flag) has a value that cannot be used. */
  FRAMEWORK_ERR_BAD_CONFIG: { exitCode: 2 },
  /** A role name breaks the naming rule (defineService, connect, the command line). */
  FRAMEWORK_ERR_BAD_ROLE: { exitCode: 2 },
  /** `defineService` got a bad replicas, port or deps entry (a self-dependency). */
  FRAMEWORK_ERR_BAD_SERVICE: { exitCode: 2 },
  /** `defineService` got an unknown balancer name or shape in `deps`. */
  FRAMEWORK_ERR_BAD_BALANCER: { exitCode: 2 },
  /** `defineService` got an `expose` that is not `true` or a list of its procedure paths. */
  FRAMEWORK_ERR_BAD_EXPOSE: { exitCode: 2 },
  /** `gateway.ts` at the app root (or `defineGateway`) is missing its export or has a bad option. */
  FRAMEWORK_ERR_BAD_GATEWAY: { exitCode: 2 },
  /** `services/<role>/index.ts` is missing, cannot load, or is not that role's definition. */
  FRAMEWORK_ERR_SERVICE_MODULE: { exitCode: 2 },
  /** A command-line argument, flag or app layout the user fixes before running again. */
  FRAMEWORK_ERR_USAGE: { exitCode: 2 },
  /** A step a command runs failed (npm install, docker compose, etcd start, a call). */
  FRAMEWORK_ERR_COMMAND_FAILED: { exitCode: 1 },
  /** etcd turned the client away for who it is: TLS (CA, client certificate) or etcd user/permission. */
  FRAMEWORK_ERR_ETCD_REFUSED: { exitCode: 2 },
  /** A command could not reach etcd at the configured endpoints. */
  FRAMEWORK_ERR_ETCD_UNREACHABLE: { exitCode: 1 },
  /** `waitForDeps`: a dependency had no live instance before the timeout. */
  FRAMEWORK_ERR_DEPS_UNAVAILABLE: { exitCode: 1 },
  /** A call found no live instance of the role while etcd is healthy. */
  FRAMEWORK_ERR_NO_INSTANCE: { exitCode: 1, trpc: 'SERVICE_UNAVAILABLE' },
  /** A call could not resolve the role: etcd unreachable and no instance known yet. */
  FRAMEWORK_ERR_PHONE_BOOK_UNREACHABLE: { exitCode: 1, trpc: 'SERVICE_UNAVAILABLE' },
  /** The procedure is not in the callee's registered manifest. */
  FRAMEWORK_ERR_UNKNOWN_PROCEDURE: { exitCode: 1, trpc: 'NOT_FOUND' },
  /** No instance answered (connection failures on every attempt). */
  FRAMEWORK_ERR_INSTANCE_UNREACHABLE: { exitCode: 1, trpc: 'BAD_GATEWAY' },
  /** The call's deadline passed. */
  FRAMEWORK_ERR_TIMEOUT: { exitCode: 1, trpc: 'TIMEOUT' },
  /** The caller aborted the call. */
  FRAMEWORK_ERR_ABORTED: { exitCode: 1, trpc: 'CLIENT_CLOSED_REQUEST' },
  /** The `hash` balancer's key function threw or returned a non-string. */
  FRAMEWORK_ERR_BAD_HASH_KEY: { exitCode: 1, trpc: 'BAD_REQUEST' },
  /** The caller's cap on calls in flight to one dependency (`deps.<role>.maxInflight`) is full. */
  FRAMEWORK_ERR_DEPENDENCY_SATURATED: { exitCode: 1, trpc: 'SERVICE_UNAVAILABLE' },
  /**
   * An instance over its in-flight limit (`FRAMEWORK_MAX_INFLIGHT`) refused the call before it
   * ran; on the wire as `error.data.frameworkCode` of its 503 (protocol/overload.ts).
   */
  FRAMEWORK_ERR_OVERLOADED: { exitCode: 1, trpc: 'SERVICE_UNAVAILABLE' },
  /** The callee answered with an error; its own tRPC code travels on. */
  FRAMEWORK_ERR_REMOTE: { exitCode: 1 },
  /** Gateway: the path names no procedure a service exposes (or is not a procedure path). */
  FRAMEWORK_ERR_NOT_EXPOSED: { exitCode: 1, trpc: 'NOT_FOUND' },
  /** Gateway: `authenticate` threw; the call went nowhere. */
  FRAMEWORK_ERR_UNAUTHENTICATED: { exitCode: 1, trpc: 'UNAUTHORIZED' },
  /** Gateway: the client's token bucket is empty; retry after `Retry-After` seconds. */
  FRAMEWORK_ERR_RATE_LIMITED: { exitCode: 1, trpc: 'TOO_MANY_REQUESTS' },
  /** Gateway: the request's `Origin` is not in the CORS allowlist. */
  FRAMEWORK_ERR_ORIGIN_REFUSED: { exitCode: 1, trpc: 'FORBIDDEN' },
} as const satisfies Record<string, { exitCode: 1 | 2; trpc?: TRPC_ERROR_CODE_KEY }>

export type FrameworkErrorCode = keyof typeof ERROR_CODES

/** The table, each row seen with every field (a row without `trpc` is not a call's error). */
const TABLE: Record<FrameworkErrorCode, { exitCode: 1 | 2; trpc?: TRPC_ERROR_CODE_KEY }> =
  ERROR_CODES

/** Shared by every copy of the framework in a process, so brand checks hold across installs. */
const CODE_BRAND = Symbol.for('framework.error.code')

/** The stable code an error carries (any framework error, TRPCError subclasses included). */
export function frameworkErrorCode(value: unknown): FrameworkErrorCode | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const code = (value as { [CODE_BRAND]?: unknown })[CODE_BRAND]
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code)
    ? (code as FrameworkErrorCode)
    : undefined
}

/** Stamps `error` with its stable code; for errors that must extend another class (TRPCError). */
export function brandError(error: object, code: FrameworkErrorCode): void {
  Object.defineProperty(error, CODE_BRAND, { value: code, enumerable: false })
}

/** Whether `value` carries one of `codes`: an `instanceof` that survives duplicate installs. */
export function hasErrorCode(value: unknown, codes: readonly FrameworkErrorCode[]): boolean {
  const code = frameworkErrorCode(value)
  return code !== undefined && codes.includes(code)
}

/** The exit code of a command that stops on `error`: from its code, else 1. */
export function exitCodeOf(error: unknown): 1 | 2 {
  const code = frameworkErrorCode(error)
  return code === undefined ? 1 : TABLE[code].exitCode
}

/** The tRPC code a call failing with `code` carries. */
export function trpcCodeOf(code: FrameworkErrorCode): TRPC_ERROR_CODE_KEY {
  return TABLE[code].trpc ?? 'INTERNAL_SERVER_ERROR'
}

/**
 * Base of the framework's errors (as undici's `UND_ERR_*`): `code` is stable, the message says
 * what happened and what to do. `instanceof` checks the brand, not the prototype, so an error
 * from another copy of the framework still matches; each subclass lists the codes it throws.
 */
export class FrameworkError extends Error {
  /** The codes errors of this class carry; the base matches any framework error. */
  static readonly codes: readonly FrameworkErrorCode[] | undefined = undefined

  constructor(
    readonly code: FrameworkErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
    this.name = 'FrameworkError'
    brandError(this, code)
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    const code = frameworkErrorCode(value)
    // A branded TRPCError keeps tRPC's `code`: it is not a FrameworkError, whose `code` is ours.
    if (code === undefined || (value as { code?: unknown }).code !== code) return false
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class asked about (`instanceof ConfigError`), whose codes narrow the base's
    const codes = this.codes
    return codes === undefined || codes.includes(code)
  }
}
