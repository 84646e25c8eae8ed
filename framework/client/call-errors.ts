import { TRPCError } from '@trpc/server'
import { TRPC_ERROR_CODES_BY_KEY } from '@trpc/server/rpc'
import {
  brandError,
  FrameworkError,
  type FrameworkErrorCode,
  hasErrorCode,
  trpcCodeOf,
} from '../internal/errors.js'

type TRPCCode = keyof typeof TRPC_ERROR_CODES_BY_KEY

/** Ways a dependency call fails on the caller's side, before or instead of an answer. */
export type CallFailure =
  | 'no-instance'
  | 'phone-book-unreachable'
  | 'unknown-procedure'
  | 'unreachable'
  | 'timeout'
  | 'aborted'
  | 'bad-hash-key'
  | 'saturated'

/** The stable code of each failure kind; its tRPC code (and so HTTP status) comes from ERROR_CODES. */
export const FAILURE_ERROR_CODES = {
  'no-instance': 'FRAMEWORK_ERR_NO_INSTANCE',
  'phone-book-unreachable': 'FRAMEWORK_ERR_PHONE_BOOK_UNREACHABLE',
  'unknown-procedure': 'FRAMEWORK_ERR_UNKNOWN_PROCEDURE',
  unreachable: 'FRAMEWORK_ERR_INSTANCE_UNREACHABLE',
  timeout: 'FRAMEWORK_ERR_TIMEOUT',
  aborted: 'FRAMEWORK_ERR_ABORTED',
  'bad-hash-key': 'FRAMEWORK_ERR_BAD_HASH_KEY',
  saturated: 'FRAMEWORK_ERR_DEPENDENCY_SATURATED',
} as const satisfies Record<CallFailure, FrameworkErrorCode>

/** tRPC code per failure kind, read from ERROR_CODES. */
export const FAILURE_CODES = Object.fromEntries(
  Object.entries(FAILURE_ERROR_CODES).map(([failure, code]) => [failure, trpcCodeOf(code)]),
) as Record<CallFailure, TRPCCode>

const DEPENDENCY_CALL_CODES: readonly FrameworkErrorCode[] = Object.values(FAILURE_ERROR_CODES)

/**
 * A dependency call that failed on the caller's side; `failure` says how. `code` is tRPC's
 * (SERVICE_UNAVAILABLE, ...); the stable framework code is `frameworkCode`.
 */
export class DependencyCallError extends TRPCError {
  readonly frameworkCode: FrameworkErrorCode

  constructor(
    readonly failure: CallFailure,
    message: string,
    cause?: unknown,
  ) {
    const frameworkCode = FAILURE_ERROR_CODES[failure]
    super({ code: trpcCodeOf(frameworkCode), message, cause })
    this.name = 'DependencyCallError'
    this.frameworkCode = frameworkCode
    brandError(this, frameworkCode)
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return hasErrorCode(value, DEPENDENCY_CALL_CODES)
  }
}

/** The callee answered with a tRPC error: same code, message prefixed with where it came from. */
export class RemoteProcedureError extends TRPCError {
  readonly frameworkCode: FrameworkErrorCode = 'FRAMEWORK_ERR_REMOTE'

  constructor(
    readonly where: string,
    readonly remote: { message: string; code: string; httpStatus: number; data: unknown },
  ) {
    const code = (
      remote.code in TRPC_ERROR_CODES_BY_KEY ? remote.code : 'INTERNAL_SERVER_ERROR'
    ) as TRPCCode
    super({ code, message: `${where}: ${remote.message}` })
    this.name = 'RemoteProcedureError'
    brandError(this, this.frameworkCode)
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return hasErrorCode(value, ['FRAMEWORK_ERR_REMOTE'])
  }
}

/** `waitForDeps`: a declared dependency had no live instance before the timeout; the boot fails. */
export class DependencyWaitError extends FrameworkError {
  static override readonly codes = ['FRAMEWORK_ERR_DEPS_UNAVAILABLE'] as const

  constructor(
    readonly missing: readonly string[],
    message: string,
  ) {
    super('FRAMEWORK_ERR_DEPS_UNAVAILABLE', message)
    this.name = 'DependencyWaitError'
  }
}
