/** Errors that can only happen before any byte of the request could have reached a server. */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  // undici refuses a request on a pool already closed (its instance left the phone book) at dispatch.
  'UND_ERR_CLOSED',
])

/**
 * Marks an error of connecting (before a request was written): a connected socket can fail
 * with EHOSTUNREACH or ENETUNREACH too (a peer's address gone mid-request), so only a failed
 * connect proves such an error came before the request.
 */
export const BEFORE_CONNECTED = Symbol.for('framework.transport.beforeConnected')

function failedToConnect(err: unknown): boolean {
  let current: unknown = err
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth++) {
    if (BEFORE_CONNECTED in current) return true
    current = (current as { cause?: unknown }).cause
  }
  return false
}

/**
 * Why a call got no answer: `connect` its connection failed (`sent` says whether the call may
 * have reached the instance); `leaving` the instance is shutting down (it left the phone book,
 * said goaway, or refused the stream with 503) and the call was not written; `input` JSON cannot
 * carry the call's input, so nothing was sent; `timeout` or `aborted` the caller gave up.
 */
export type TransportFailure = 'connect' | 'leaving' | 'input' | 'timeout' | 'aborted'

/** The request got no HTTP answer. `sent: false` proves the server never saw it. */
export class TransportError extends Error {
  constructor(
    message: string,
    readonly reason: TransportFailure,
    readonly sent: boolean,
    options?: { cause: unknown },
  ) {
    super(message, options)
    this.name = 'TransportError'
  }
}

/** A request to `url` that failed without an answer, as sent or provably not. */
export function connectionError(url: string, err: unknown): TransportError {
  const code = errorCode(err)
  const message = err instanceof Error ? err.message : String(err)
  return new TransportError(
    `cannot reach ${url}: ${code ?? message}`,
    'connect',
    !NOT_SENT_CODES.has(code ?? '') && !failedToConnect(err),
    { cause: err },
  )
}

function errorCode(err: unknown): string | undefined {
  let current: unknown = err
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string' && code !== 'UND_ERR_ABORTED') return code
    current = current.cause
  }
  return undefined
}
