import { CLOCK_TOLERANCE_S, type VerifiedCaller, verifyCallToken } from './call-token.js'

/** Tokens remembered as checked at most (a caller re-sends one for up to a minute). */
const MAX_CACHED = 4_096

/**
 * Checks the call tokens meant for one role (the instance's own), remembering the ones that
 * passed until they expire: a caller sends the same token on every call for up to a minute, so
 * the signature is checked once, not per call. Refusals are not remembered (they cost one HMAC).
 */
export class TokenVerifier {
  readonly #checked = new Map<string, VerifiedCaller>()

  constructor(
    private readonly options: {
      /** The current secret first, then the previous one (during a rotation). */
      secrets: readonly Uint8Array[]
      /** The role tokens must be meant for (`aud`). */
      audience: string
      namespace: string
    },
  ) {}

  /** The caller `token` names, or why it is refused; synchronous when it was checked before. */
  verify(token: string): VerifiedCaller | string | Promise<VerifiedCaller | string> {
    const known = this.#checked.get(token)
    if (known !== undefined) {
      if (Date.now() < known.expiresAt + CLOCK_TOLERANCE_S * 1000) return known
      this.#checked.delete(token)
    }
    return verifyCallToken(token, this.options).then((caller) => {
      if (typeof caller !== 'string') this.#remember(token, caller)
      return caller
    })
  }

  #remember(token: string, caller: VerifiedCaller): void {
    if (this.#checked.size >= MAX_CACHED) {
      // The oldest first (insertion order): they expire first.
      const oldest = this.#checked.keys().next().value
      if (oldest !== undefined) this.#checked.delete(oldest)
    }
    this.#checked.set(token, caller)
  }
}
