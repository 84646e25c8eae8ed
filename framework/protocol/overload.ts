/**
 * Load shedding on the wire. An instance over its in-flight limit answers a call at once with
 * 503, a tRPC `SERVICE_UNAVAILABLE` error body whose `data.frameworkCode` is OVERLOADED_CODE, and
 * (on HTTP) `Retry-After`. The marker says the call was refused before its procedure ran, so a
 * caller may send it again elsewhere, mutations included. A plain 503 says no such thing: a
 * procedure that failed with SERVICE_UNAVAILABLE (its own dependency down) did run.
 *
 * A procedure cannot forge the marker: the services' error formatter never copies fields into
 * `data`, and an error from a nested call arrives without it.
 */

/** The status of a shed call. */
export const OVERLOADED_STATUS = 503

/** The stable code in `error.data.frameworkCode` of a shed answer. */
export const OVERLOADED_CODE = 'FRAMEWORK_ERR_OVERLOADED'

/** What a shed caller is told to wait before trying that instance again (seconds). */
export const RETRY_AFTER_SECONDS = 1

/** The HTTP header carrying RETRY_AFTER_SECONDS (a stream answer carries it in `data.retryAfter`). */
export const RETRY_AFTER_HEADER = 'retry-after'

/** The fields a shed answer adds to its error body's `data`. */
export const OVERLOADED_DATA = {
  frameworkCode: OVERLOADED_CODE,
  retryAfter: RETRY_AFTER_SECONDS,
} as const

/** Whether an answer is a shed: the instance refused the call before running it. */
export function isOverloadedAnswer(status: number, body: unknown): boolean {
  if (status !== OVERLOADED_STATUS || typeof body !== 'object' || body === null) return false
  const data = (body as { error?: { data?: { frameworkCode?: unknown } } }).error?.data
  return data?.frameworkCode === OVERLOADED_CODE
}
