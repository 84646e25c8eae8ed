import type { CallAuthConfig } from '../config/call-auth.js'
import { TOKEN_LIFETIME_S } from '../protocol/call-token.js'
import { decodeCaller } from '../protocol/metadata.js'
import { mintCallToken } from './call-token.js'

/** A token is renewed once this much of its life is left (ms): it never goes out nearly expired. */
const RENEW_BEFORE_MS = 20_000
/** Tokens with a principal kept at most (one per end user and callee role). */
const MAX_PRINCIPAL_TOKENS = 1_024

interface Minted {
  token: string
  /** When to mint the next one (epoch ms); until then this one is sent. */
  renewAt: number
  /** When it expires (epoch ms). */
  expiresAt: number
  /** A mint in progress for this entry. */
  renewing?: Promise<string>
}

/**
 * The tokens a process's calls carry as `caller` (a service's role, `gateway`, `cli`), when call
 * tokens are on (FRAMEWORK_AUTH=token); undefined when they are off.
 */
export function callTokensFor(
  config: CallAuthConfig,
  caller: string,
  namespace: string,
): CallTokens | undefined {
  if (config.mode !== 'token' || !config.secret) return undefined
  return new CallTokens({
    caller,
    namespace,
    secret: config.secret,
    previousSecret: config.previousSecret,
  })
}

/** Which secret signs: the current one, or the previous one (a callee not rotated yet). */
export type SigningKey = 'current' | 'previous'

/**
 * The caller side of call tokens: one token per callee role (and per end user, for calls made
 * for one), minted once and sent on every call until RENEW_BEFORE_MS before it expires, when
 * the next is minted in the background while the current one is still sent. Signing per call
 * would cost a signature per call; this costs one per callee role per ~40 s.
 */
export class CallTokens {
  readonly #minted = new Map<string, Minted>()
  /** Mints in progress for keys that have no token yet. */
  readonly #first = new Map<string, Promise<string>>()
  /** The cache keys of roles' own tokens (no principal), per signing key. */
  readonly #plainKeys: Record<SigningKey, Map<string, string>> = {
    current: new Map(),
    previous: new Map(),
  }

  constructor(
    private readonly options: {
      /** The calling role (`iss`/`sub`): the service's role, `gateway`, `cli`, the app name. */
      caller: string
      namespace: string
      secret: Uint8Array
      /** The previous secret during a rotation: used for a callee that refused the current one. */
      previousSecret?: Uint8Array | undefined
    },
  ) {}

  /** Whether a callee that refuses a token may be tried with one signed by the previous secret. */
  get hasPrevious(): boolean {
    return this.options.previousSecret !== undefined
  }

  /** The calling role tokens name. */
  get caller(): string {
    return this.options.caller
  }

  /**
   * The token for a call to `audience` (for the end user `principal`, its CALLER_KEY value, when
   * given): the cached one when it has life left, synchronously; a promise only when none is.
   */
  token(
    audience: string,
    principal?: string,
    key: SigningKey = 'current',
  ): string | Promise<string> {
    const cacheKey =
      principal === undefined ? this.#plainKey(key, audience) : `${key}\n${audience}\n${principal}`
    const now = Date.now()
    const minted = this.#minted.get(cacheKey)
    if (minted !== undefined && now < minted.expiresAt - 1_000) {
      if (now >= minted.renewAt && minted.renewing === undefined) {
        // A failed renewal is forgotten, so the next call tries again (never an expired token
        // handed out for good).
        minted.renewing = this.#mint(cacheKey, audience, principal, key).catch(() => {
          minted.renewing = undefined
          return minted.token
        })
      }
      return minted.token
    }
    if (minted?.renewing !== undefined) return minted.renewing
    // The first calls to a callee all wait for the one mint.
    let first = this.#first.get(cacheKey)
    if (first === undefined) {
      first = this.#mint(cacheKey, audience, principal, key).finally(() =>
        this.#first.delete(cacheKey),
      )
      this.#first.set(cacheKey, first)
    }
    return first
  }

  /**
   * The cache key of a role's own token, made once per role and key: a call builds no string (and
   * the Map hashes none) on the hot path.
   */
  #plainKey(key: SigningKey, audience: string): string {
    const keys = this.#plainKeys[key]
    let cacheKey = keys.get(audience)
    if (cacheKey === undefined) {
      cacheKey = `${key}\n${audience}\n`
      keys.set(audience, cacheKey)
    }
    return cacheKey
  }

  async #mint(
    cacheKey: string,
    audience: string,
    principalValue: string | undefined,
    key: SigningKey,
  ): Promise<string> {
    const secret =
      key === 'previous' && this.options.previousSecret
        ? this.options.previousSecret
        : this.options.secret
    const issuedAt = Date.now()
    const token = await mintCallToken({
      secret,
      caller: this.options.caller,
      audience,
      namespace: this.options.namespace,
      principal: principalValue === undefined ? undefined : { ...decodeCaller(principalValue) },
    })
    // Whole seconds in the token: its life counts from the second it was stamped with.
    const expiresAt = Math.floor(issuedAt / 1000) * 1000 + TOKEN_LIFETIME_S * 1000
    if (principalValue !== undefined && this.#minted.size >= MAX_PRINCIPAL_TOKENS) {
      const oldest = this.#minted.keys().next().value
      if (oldest !== undefined) this.#minted.delete(oldest)
    }
    this.#minted.delete(cacheKey)
    this.#minted.set(cacheKey, { token, expiresAt, renewAt: expiresAt - RENEW_BEFORE_MS })
    return token
  }
}
