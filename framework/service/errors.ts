import type { TRPCDefaultErrorShape } from '@trpc/server'
import { ZodError } from 'zod'

/** One input problem, located by its path in the procedure input (`[]` is the input itself). */
export interface InputIssue {
  path: (string | number)[]
  message: string
  code: string
}

export type ServiceErrorShape = TRPCDefaultErrorShape & {
  data: TRPCDefaultErrorShape['data'] & { issues?: InputIssue[] }
}

/** `invalid input: key: …; value: …`: each bad field by its path (the gateway words it so too). */
export function describeInputIssues(issues: readonly InputIssue[]): string {
  const where = issues
    .map((issue) => `${issue.path.length ? issue.path.join('.') : '(input)'}: ${issue.message}`)
    .join('; ')
  return `invalid input: ${where}`
}

/** By shape, not `instanceof`: an app may validate with its own copy of zod. */
function isZodError(value: unknown): value is ZodError {
  return (
    value instanceof ZodError ||
    (value instanceof Error &&
      value.name === 'ZodError' &&
      Array.isArray((value as ZodError).issues))
  )
}

/**
 * Error formatter shared by every service. A validation failure names each bad field and carries
 * the zod issues with their paths in `error.data.issues`; a body that is not JSON or too large
 * says so and what to change. Stack traces are sent only with NODE_ENV=development.
 */
export function formatServiceError({
  shape,
  error,
}: {
  shape: TRPCDefaultErrorShape
  error: { code: string; message: string; cause?: unknown }
}): ServiceErrorShape {
  if (isZodError(error.cause)) {
    const issues = error.cause.issues.map((issue) => ({
      path: issue.path.map((segment) => (typeof segment === 'symbol' ? String(segment) : segment)),
      message: issue.message,
      code: issue.code,
    }))
    return { ...shape, message: describeInputIssues(issues), data: { ...shape.data, issues } }
  }
  if (error.code === 'BAD_REQUEST' && error.cause instanceof SyntaxError) {
    return {
      ...shape,
      message: `request input is not valid JSON (${error.cause.message}); send a JSON body or ?input=<url-encoded JSON>`,
    }
  }
  // tRPC's adapter says only "PAYLOAD_TOO_LARGE"; our own 413s already say what to do.
  if (error.code === 'PAYLOAD_TOO_LARGE' && error.message === 'PAYLOAD_TOO_LARGE') {
    return {
      ...shape,
      message:
        'request body is larger than this service accepts; send less, or raise FRAMEWORK_MAX_BODY_BYTES on the service',
    }
  }
  return shape
}
