import { TRPCError } from '@trpc/server'
import { getHTTPStatusCodeFromError } from '@trpc/server/http'
import { type TRPC_ERROR_CODE_KEY, TRPC_ERROR_CODES_BY_KEY } from '@trpc/server/rpc'
import type { Logger } from 'pino'
import { DependencyCallError, RemoteProcedureError } from '../client/call-errors.js'
import type { FrameworkErrorCode } from '../internal/errors.js'
import type { InputIssue } from '../service/errors.js'

/** One call's answer at the gateway: an HTTP status and tRPC's body (`{ result }` or `{ error }`). */
export interface CallAnswer {
  status: number
  body: { result: { data: unknown } } | { error: ErrorShape }
}

/** tRPC's default error shape (what `@trpc/client` reads), plus the framework's stable code. */
export interface ErrorShape {
  message: string
  code: number
  data: {
    code: TRPC_ERROR_CODE_KEY
    httpStatus: number
    path?: string
    issues?: InputIssue[]
    frameworkCode?: FrameworkErrorCode
    [field: string]: unknown
  }
}

const statusOf = new Map<TRPC_ERROR_CODE_KEY, number>()

/** The HTTP status tRPC gives a code (401 for UNAUTHORIZED…), from tRPC's own table. */
export function httpStatusOf(code: TRPC_ERROR_CODE_KEY): number {
  let status = statusOf.get(code)
  if (status === undefined) {
    status = getHTTPStatusCodeFromError(new TRPCError({ code }))
    statusOf.set(code, status)
  }
  return status
}

/** A refusal of the whole request before any call: its answer, headers to add, whether to close. */
export class WholeRefusal {
  constructor(
    readonly answer: CallAnswer,
    readonly headers: Record<string, string> = {},
    readonly close = false,
  ) {}
}

export function success(data: unknown): CallAnswer {
  return { status: 200, body: { result: { data } } }
}

/**
 * A refusal in tRPC's error shape. `status` overrides the code's own status (a timeout at the
 * edge is 504 with tRPC's TIMEOUT shape).
 */
export function refusal(
  code: TRPC_ERROR_CODE_KEY,
  message: string,
  name: string | undefined,
  extra: { status?: number; frameworkCode?: FrameworkErrorCode; issues?: InputIssue[] } = {},
): CallAnswer {
  const status = extra.status ?? httpStatusOf(code)
  const data: ErrorShape['data'] = { code, httpStatus: status }
  if (name !== undefined) data.path = name
  if (extra.issues) data.issues = extra.issues
  if (extra.frameworkCode) data.frameworkCode = extra.frameworkCode
  return { status, body: { error: { message, code: TRPC_ERROR_CODES_BY_KEY[code], data } } }
}

/**
 * A failed call as the outside world sees it. A service's own error goes out as it answered it
 * (its message, code and data; the path is the gateway's name). A failure to reach the service
 * gets an edge message naming the role: no instance ids, URLs or etcd addresses leave the system.
 */
export function callFailure(err: unknown, name: string, role: string, log: Logger): CallAnswer {
  if (err instanceof RemoteProcedureError) {
    const { remote } = err
    // RemoteProcedureError has mapped the callee's code onto tRPC's (unknown ones to 500).
    const code = err.code
    // A service in development mode sends its stack trace: it does not leave the system.
    const { stack: _stack, ...remoteData } =
      (remote.data as Record<string, unknown> | undefined) ?? {}
    const data = { ...remoteData, path: name }
    return {
      status: remote.httpStatus,
      body: {
        error: {
          message: remote.message,
          code: TRPC_ERROR_CODES_BY_KEY[code],
          data: { ...data, code, httpStatus: remote.httpStatus },
        },
      },
    }
  }
  if (err instanceof DependencyCallError) {
    const frameworkCode = err.frameworkCode
    log.warn({ err: err.message, call: name, failure: err.failure }, 'gateway call failed')
    switch (err.failure) {
      case 'no-instance':
      case 'phone-book-unreachable':
        return refusal(
          'SERVICE_UNAVAILABLE',
          `no live instance of role '${role}'; try again shortly`,
          name,
          { frameworkCode },
        )
      case 'timeout':
        return refusal('TIMEOUT', `${name}: no answer within its deadline`, name, {
          status: 504,
          frameworkCode,
        })
      case 'unreachable':
        return refusal('BAD_GATEWAY', `role '${role}' could not be reached`, name, {
          frameworkCode,
        })
      case 'unknown-procedure':
        return refusal('NOT_FOUND', `no live instance of role '${role}' serves ${name}`, name, {
          frameworkCode,
        })
      case 'aborted':
        return refusal('CLIENT_CLOSED_REQUEST', 'the client went away', name, { frameworkCode })
      case 'saturated':
        // The gateway's own cap on calls in flight to the role (deps.<role>.maxInflight).
        return refusal('SERVICE_UNAVAILABLE', err.message, name, { frameworkCode })
      case 'bad-hash-key':
        return refusal('BAD_REQUEST', `${name}: the input gives no routing key`, name, {
          frameworkCode,
        })
    }
  }
  log.error({ err, call: name }, 'gateway call failed unexpectedly')
  return refusal('INTERNAL_SERVER_ERROR', 'the gateway failed on this call', name)
}
