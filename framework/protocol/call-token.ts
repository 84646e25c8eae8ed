/**
 * Call tokens on the wire (docs/registry-protocol.md, "Call tokens"): a short-lived JWT (HS256,
 * signed with the namespace secret) naming the calling role (`iss`, `sub`) and the callee role
 * (`aud`), the namespace (`ns`), `iat` and `exp` (at most TOKEN_LIFETIME_S apart), and, when the
 * call is made for an end user, that user (`principal`).
 *
 * Where it travels: the TOKEN_HEADER of every `/_rpc` and `/trpc` request and of the stream's
 * upgrade request; on an open stream a fresh one comes in an AUTH_FRAME_PATH frame before the
 * one the connection holds expires. A call made for an end user carries its own token with the
 * principal in its metadata (PRINCIPAL_KEY, metadata.ts), as the gateway's calls do.
 */

/** The request header (and upgrade header) that carries the caller's token. */
export const TOKEN_HEADER = 'x-framework-token'

/**
 * The stream frame that hands the service a fresh token for the connection:
 * `[id, "_auth", "mutation", {"token": "<jwt>"}, null]`, answered on `id` (200, or 401 and the
 * connection keeps the token it had). A service without call tokens answers it 404, which the
 * client ignores, so a client with tokens still talks to an older service.
 */
export const AUTH_FRAME_PATH = '_auth'

/**
 * The `error.data.frameworkCode` of a call refused for its token (missing, expired, bad signature,
 * wrong audience or namespace) before anything ran. A 401 without it came from the procedure
 * itself (its own check of `ctx.caller`), which did run: only a marked refusal may be sent again
 * with a token signed by the previous secret.
 */
export const TOKEN_REFUSED_CODE = 'FRAMEWORK_ERR_TOKEN_REFUSED'

/** `body` (a tRPC error body) with the TOKEN_REFUSED_CODE marker in its `data`. */
export function markTokenRefused(body: unknown): unknown {
  const error = (body as { error?: { data?: object } } | undefined)?.error
  if (!error) return body
  return {
    ...(body as object),
    error: { ...error, data: { ...error.data, frameworkCode: TOKEN_REFUSED_CODE } },
  }
}

/** Whether an answer is a token refusal (401 with the marker): the call did not run. */
export function isTokenRefused(status: number, body: unknown): boolean {
  if (status !== 401 || typeof body !== 'object' || body === null) return false
  const data = (body as { error?: { data?: { frameworkCode?: unknown } } }).error?.data
  return data?.frameworkCode === TOKEN_REFUSED_CODE
}

/** Longest lifetime of a token (`exp - iat`), seconds; longer ones are refused. */
export const TOKEN_LIFETIME_S = 60

/** Longest token accepted (characters); a longer header or frame value is refused with 401. */
export const MAX_TOKEN_CHARS = 4096

/** The claims of a call token. */
export interface CallTokenClaims {
  /** The calling role (also `sub`). */
  iss: string
  sub: string
  /** The callee role. */
  aud: string
  /** The namespace both roles live in; a token for another namespace is refused. */
  ns: string
  iat: number
  exp: number
  /** The end user the call is made for (what the gateway's `authenticate()` returned). */
  principal?: Record<string, unknown>
}
