import { TRPCError } from '@trpc/server'
import { TRPC_ERROR_CODES_BY_KEY } from '@trpc/server/rpc'

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

/** The one table mapping the framework's failure kinds to tRPC codes (and so HTTP statuses). */
export const FAILURE_CODES: Record<CallFailure, TRPCCode> = {
  'no-instance': 'SERVICE_UNAVAILABLE',
  'phone-book-unreachable': 'SERVICE_UNAVAILABLE',
  'unknown-procedure': 'NOT_FOUND',
  unreachable: 'BAD_GATEWAY',
  timeout: 'TIMEOUT',
  aborted: 'CLIENT_CLOSED_REQUEST',
  'bad-hash-key': 'BAD_REQUEST',
}

/** A dependency call that failed on the caller's side; `failure` says how. */
export class DependencyCallError extends TRPCError {
  constructor(
    readonly failure: CallFailure,
    message: string,
    cause?: unknown,
  ) {
    super({ code: FAILURE_CODES[failure], message, cause })
    this.name = 'DependencyCallError'
  }
}

/** The callee answered with a tRPC error: same code, message prefixed with where it came from. */
export class RemoteProcedureError extends TRPCError {
  constructor(
    readonly where: string,
    readonly remote: { message: string; code: string; httpStatus: number; data: unknown },
  ) {
    const code = (
      remote.code in TRPC_ERROR_CODES_BY_KEY ? remote.code : 'INTERNAL_SERVER_ERROR'
    ) as TRPCCode
    super({ code, message: `${where}: ${remote.message}` })
    this.name = 'RemoteProcedureError'
  }
}
