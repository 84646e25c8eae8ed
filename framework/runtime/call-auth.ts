import type { CallAuthConfig } from '../config/call-auth.js'
import { TOKEN_HEADER } from '../protocol/call-token.js'
import {
  CALLER_KEY,
  type CallMetadata,
  encodeCaller,
  NO_METADATA,
  PRINCIPAL_KEY,
} from '../protocol/metadata.js'
import type { VerifiedCaller } from '../security/call-token.js'
import { TokenVerifier } from '../security/token-verifier.js'

/**
 * What a transport learned of a call's caller: the role its token proves, why its token was
 * refused (a message for the 401), or undefined (no token needed: call tokens are off).
 */
export type CallerCheck = VerifiedCaller | string | undefined

/** The refusal of a call that came without a token to a service that requires one. */
export const TOKEN_MISSING = `call token missing: send a call token in the ${TOKEN_HEADER} header (FRAMEWORK_SECRET of the namespace; see docs/security.md)`

/**
 * The service side of call tokens: checks the token a request or stream brought (once per
 * token, then remembered until it expires) and decides which end user a call is made for: with
 * tokens on, only one named by a signed PRINCIPAL_KEY token; the unsigned CALLER_KEY is dropped.
 */
export class CallAuth {
  readonly required: boolean
  readonly #verifier: TokenVerifier | undefined

  constructor(config: CallAuthConfig, role: string, namespace: string) {
    this.required = config.mode === 'token'
    const secrets = [config.secret, config.previousSecret].filter(
      (secret): secret is Uint8Array => secret !== undefined,
    )
    this.#verifier = this.required
      ? new TokenVerifier({ secrets, audience: role, namespace })
      : undefined
  }

  /** Checks the token of a request or upgrade (`header`: its TOKEN_HEADER value). */
  check(header: string | string[] | undefined): CallerCheck | Promise<CallerCheck> {
    if (!this.#verifier) return undefined
    if (header === undefined || header === '') return TOKEN_MISSING
    if (typeof header !== 'string')
      return `header ${TOKEN_HEADER} is sent more than once; send it once`
    return this.#verifier.verify(header)
  }

  /**
   * The metadata the procedure sees, or why the call is refused: with tokens on, CALLER_KEY is
   * the principal of a valid PRINCIPAL_KEY token from the same calling role, or absent.
   */
  principal(
    metadata: CallMetadata,
    caller: VerifiedCaller,
  ): CallMetadata | string | Promise<CallMetadata | string> {
    if (!this.#verifier) return metadata
    const token = metadata[PRINCIPAL_KEY]
    if (token === undefined) {
      return metadata[CALLER_KEY] === undefined ? metadata : without(metadata, CALLER_KEY)
    }
    const withPrincipal = (checked: VerifiedCaller | string): CallMetadata | string => {
      if (typeof checked === 'string') return `${PRINCIPAL_KEY}: ${checked}`
      if (checked.role !== caller.role) {
        return `${PRINCIPAL_KEY} was signed for role '${checked.role}', not the caller '${caller.role}'`
      }
      const rest = without(without(metadata, PRINCIPAL_KEY), CALLER_KEY)
      if (checked.principal === undefined) return rest
      const encoded = encodeCaller(checked.principal)
      return typeof encoded === 'string' ? { ...rest, [CALLER_KEY]: encoded } : encoded.error
    }
    const checked = this.#verifier.verify(token)
    return checked instanceof Promise ? checked.then(withPrincipal) : withPrincipal(checked)
  }
}

function without(metadata: CallMetadata, key: string): CallMetadata {
  const { [key]: _, ...rest } = metadata
  for (const _key in rest) return rest
  return NO_METADATA
}
