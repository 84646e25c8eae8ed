import { describe, expect, it } from 'vitest'
import { mintCallToken, verifyCallToken } from '../../framework/security/call-token.js'
import { CallTokens } from '../../framework/security/call-tokens.js'
import { TokenVerifier } from '../../framework/security/token-verifier.js'

const key = (text: string) => new TextEncoder().encode(text.padEnd(32, '.'))
const CURRENT = key('current')
const PREVIOUS = key('previous')

describe('call tokens (HS256 JWT via jose)', () => {
  it('verifies what it mints: calling role, expiry within 60 s, principal', async () => {
    const token = await mintCallToken({
      secret: CURRENT,
      caller: 'api',
      audience: 'cache',
      namespace: 'shop',
      principal: { id: 'u1' },
    })
    const caller = await verifyCallToken(token, {
      secrets: [CURRENT],
      audience: 'cache',
      namespace: 'shop',
    })
    expect(caller).toMatchObject({ role: 'api', principal: { id: 'u1' } })
    const expiresIn = (caller as { expiresAt: number }).expiresAt - Date.now()
    expect(expiresIn).toBeGreaterThan(55_000)
    expect(expiresIn).toBeLessThanOrEqual(60_000)
  })

  it('accepts the previous secret during a rotation, nothing else', async () => {
    const signed = (secret: Uint8Array) =>
      mintCallToken({ secret, caller: 'api', audience: 'cache', namespace: 'shop' })
    const options = { secrets: [CURRENT, PREVIOUS], audience: 'cache', namespace: 'shop' }
    expect(await verifyCallToken(await signed(PREVIOUS), options)).toMatchObject({ role: 'api' })
    expect(await verifyCallToken(await signed(key('other')), options)).toBe(
      'call token signature does not match the namespace secret',
    )
    expect(
      await verifyCallToken(await signed(PREVIOUS), { ...options, secrets: [CURRENT] }),
    ).toMatch(/signature/)
  })

  it('refuses another audience or namespace with a message saying which', async () => {
    const token = await mintCallToken({
      secret: CURRENT,
      caller: 'api',
      audience: 'cache',
      namespace: 'shop',
    })
    const check = (audience: string, namespace: string) =>
      verifyCallToken(token, { secrets: [CURRENT], audience, namespace })
    expect(await check('billing', 'shop')).toBe("call token is for another role, not 'billing'")
    expect(await check('cache', 'other')).toBe('call token is for namespace "shop", not \'other\'')
  })
})

describe('CallTokens: minted once per callee role, not per call', () => {
  it('returns the cached token synchronously after the first mint', async () => {
    const tokens = new CallTokens({ caller: 'api', namespace: 'shop', secret: CURRENT })
    const first = tokens.token('cache')
    expect(first).toBeInstanceOf(Promise)
    // Calls made before the first mint ends wait for that one mint.
    expect(tokens.token('cache')).toBe(first)
    const token = await first
    expect(tokens.token('cache')).toBe(token)
    expect(tokens.token('cache')).toBe(token)
    const other = await tokens.token('billing')
    expect(other).not.toBe(token)
    const forUser = await tokens.token('cache', Buffer.from('{"id":"u1"}').toString('base64url'))
    expect(forUser).not.toBe(token)
    const previous = await tokens.token('cache', undefined, 'previous')
    // No previous secret configured: signed with the current one, still a token of its own.
    expect(typeof previous).toBe('string')
  })
})

describe('TokenVerifier remembers checked tokens until they expire', () => {
  it('a second check of the same token is synchronous; refusals are not remembered', async () => {
    const verifier = new TokenVerifier({ secrets: [CURRENT], audience: 'cache', namespace: 'shop' })
    const token = await mintCallToken({
      secret: CURRENT,
      caller: 'api',
      audience: 'cache',
      namespace: 'shop',
    })
    const first = verifier.verify(token)
    expect(first).toBeInstanceOf(Promise)
    expect(await first).toMatchObject({ role: 'api' })
    expect(verifier.verify(token)).toMatchObject({ role: 'api' })
    expect(verifier.verify('not.a.token')).toBeInstanceOf(Promise)
    expect(verifier.verify('not.a.token')).toBeInstanceOf(Promise)
  })
})
