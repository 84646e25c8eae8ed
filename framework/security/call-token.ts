import { errors, jwtVerify, SignJWT } from 'jose'
import { type CallTokenClaims, MAX_TOKEN_CHARS, TOKEN_LIFETIME_S } from '../protocol/call-token.js'

/** What a token says once checked: the calling role, when it expires, the end user if any. */
export interface VerifiedCaller {
  /** The calling role (`sub`). */
  role: string
  /** When the token expires (epoch ms). */
  expiresAt: number
  /** The end user the call is made for, when the token names one. */
  principal?: Record<string, unknown>
}

/** Clock difference between instances tolerated on `iat`/`exp` (seconds). */
export const CLOCK_TOLERANCE_S = 5

/** A token for a call from `caller` to `audience` in `namespace`, signed with `secret` (HS256). */
export function mintCallToken(options: {
  secret: Uint8Array
  caller: string
  audience: string
  namespace: string
  principal?: Record<string, unknown>
  lifetimeS?: number
}): Promise<string> {
  const lifetimeS = Math.min(options.lifetimeS ?? TOKEN_LIFETIME_S, TOKEN_LIFETIME_S)
  const now = Math.floor(Date.now() / 1000)
  const claims: Record<string, unknown> = { ns: options.namespace }
  if (options.principal !== undefined) claims.principal = options.principal
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(options.caller)
    .setSubject(options.caller)
    .setAudience(options.audience)
    .setIssuedAt(now)
    .setExpirationTime(now + lifetimeS)
    .sign(options.secret)
}

/**
 * Checks a token meant for `audience` in `namespace` against each secret in turn (the current
 * one, then the previous one during a rotation): the caller it names, or why it is refused (a
 * message for the 401). Only HS256 is accepted (`alg: none` and every other algorithm are not).
 */
export async function verifyCallToken(
  token: string,
  options: { secrets: readonly Uint8Array[]; audience: string; namespace: string },
): Promise<VerifiedCaller | string> {
  if (token.length > MAX_TOKEN_CHARS) {
    return `call token is ${token.length} characters, over ${MAX_TOKEN_CHARS}`
  }
  let refusal = 'no secret to check the call token with'
  for (const secret of options.secrets) {
    let payload: Partial<CallTokenClaims>
    try {
      ;({ payload } = await jwtVerify<Partial<CallTokenClaims>>(token, secret, {
        algorithms: ['HS256'],
        audience: options.audience,
        clockTolerance: CLOCK_TOLERANCE_S,
        requiredClaims: ['iss', 'sub', 'aud', 'iat', 'exp'],
      }))
    } catch (err) {
      refusal = refusalOf(err, options.audience)
      // Another secret may have signed it; any other failure is the token's own.
      if (err instanceof errors.JWSSignatureVerificationFailed) continue
      return refusal
    }
    return checkClaims(payload, options.namespace)
  }
  return refusal
}

function checkClaims(
  payload: Partial<CallTokenClaims>,
  namespace: string,
): VerifiedCaller | string {
  const { sub, iss, ns, iat, exp, principal } = payload
  if (typeof sub !== 'string' || sub === '' || sub !== iss) {
    return 'call token must name the calling role in both iss and sub'
  }
  if (ns !== namespace) {
    return `call token is for namespace ${JSON.stringify(ns)}, not '${namespace}'`
  }
  if (typeof iat !== 'number' || typeof exp !== 'number' || exp - iat > TOKEN_LIFETIME_S) {
    return `call token lives longer than ${TOKEN_LIFETIME_S} s (exp - iat); mint short-lived tokens`
  }
  if (
    principal !== undefined &&
    (typeof principal !== 'object' || principal === null || Array.isArray(principal))
  ) {
    return 'call token principal must be a JSON object'
  }
  const caller: VerifiedCaller = { role: sub, expiresAt: exp * 1000 }
  if (principal !== undefined) caller.principal = principal
  return caller
}

function refusalOf(err: unknown, audience: string): string {
  if (err instanceof errors.JWTExpired) return 'call token expired; mint a fresh one'
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return 'call token signature does not match the namespace secret'
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return 'call token must be signed with HS256'
  if (err instanceof errors.JWTClaimValidationFailed && err.claim === 'aud') {
    return `call token is for another role, not '${audience}'`
  }
  if (err instanceof errors.JWTClaimValidationFailed || err instanceof errors.JWTInvalid) {
    return `call token claims are invalid (${err.message})`
  }
  return 'call token is not a valid JWT'
}
