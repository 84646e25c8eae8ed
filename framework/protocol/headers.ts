import type { IncomingHttpHeaders } from 'node:http'

/** The caller's remaining deadline (ms), sent to the callee for its own nested calls. */
export const DEADLINE_HEADER = 'x-deadline-ms'

/** The caller's remaining deadline (ms) from a request's headers, if valid. */
export function deadlineFrom(headers: IncomingHttpHeaders): number | undefined {
  const header = headers[DEADLINE_HEADER]
  if (typeof header !== 'string') return undefined
  const ms = Number(header)
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined
}
