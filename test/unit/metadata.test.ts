import { describe, expect, it } from 'vitest'
import {
  CALLER_KEY,
  decodeCaller,
  encodeCaller,
  encodeMetadata,
  hasMetadata,
  MAX_CALLER_BYTES,
  MAX_METADATA_BYTES,
  MAX_METADATA_ENTRIES,
  metadataFromHeaders,
  NO_METADATA,
  parseMetadata,
  propagatedMetadata,
  REQUEST_ID_KEY,
} from '../../framework/protocol/metadata.js'

describe('call metadata', () => {
  it('reads only the known keys from request headers', () => {
    expect(metadataFromHeaders({ host: 'x', 'content-type': 'application/json' })).toBe(NO_METADATA)
    expect(
      metadataFromHeaders({ [REQUEST_ID_KEY]: 'abc-123', [CALLER_KEY]: 'eyJ9', 'x-other': 'y' }),
    ).toEqual({ [REQUEST_ID_KEY]: 'abc-123', [CALLER_KEY]: 'eyJ9' })
  })

  it('refuses bad header values naming the header and the accepted form', () => {
    expect(metadataFromHeaders({ [REQUEST_ID_KEY]: 'a b' })).toBe(
      'header x-request-id is invalid: use 1-128 visible ASCII characters, e.g. a UUID',
    )
    expect(metadataFromHeaders({ [REQUEST_ID_KEY]: 'r'.repeat(129) })).toMatch(/x-request-id/)
    expect(metadataFromHeaders({ [CALLER_KEY]: 'not base64url!' })).toMatch(
      /^header x-framework-caller is invalid: use base64url of a JSON object/,
    )
    expect(metadataFromHeaders({ [REQUEST_ID_KEY]: ['a', 'b'] as unknown as string })).toBe(
      'header x-request-id is sent more than once; send it once',
    )
  })

  it('parses the frame element: unknown keys dropped but counted, limits enforced', () => {
    expect(parseMetadata(undefined)).toBe(NO_METADATA)
    expect(parseMetadata(null)).toBe(NO_METADATA)
    expect(parseMetadata({ [REQUEST_ID_KEY]: 'r1', traceparent: '00-abc-def-01' })).toEqual({
      [REQUEST_ID_KEY]: 'r1',
    })
    expect(parseMetadata({ traceparent: 'x' })).toBe(NO_METADATA)
    const many = Object.fromEntries(
      Array.from({ length: MAX_METADATA_ENTRIES + 1 }, (_, i) => [`k${i}`, 'v']),
    )
    expect(parseMetadata(many)).toBe(
      `call metadata has ${MAX_METADATA_ENTRIES + 1} entries, over the limit of ${MAX_METADATA_ENTRIES}`,
    )
    expect(parseMetadata({ a: 'x'.repeat(MAX_METADATA_BYTES) })).toBe(
      `call metadata is over ${MAX_METADATA_BYTES} bytes; send less`,
    )
    for (const bad of [{ A: 'upper' }, { a: 1 }, { a: 'line\nbreak' }, { __proto__x: 'v' }]) {
      expect(parseMetadata(bad)).toMatch(/^call metadata entry .* is invalid/)
    }
    expect(parseMetadata(JSON.parse('{"__proto__":"v"}'))).toMatch(/is invalid/)
    expect(parseMetadata('x-request-id: 1')).toMatch(/is a JSON object/)
    expect(parseMetadata([])).toMatch(/is a JSON object/)
  })

  it('encodes nothing for no metadata, JSON otherwise', () => {
    expect(hasMetadata(undefined)).toBe(false)
    expect(hasMetadata(NO_METADATA)).toBe(false)
    expect(hasMetadata({})).toBe(false)
    expect(encodeMetadata({})).toBeUndefined()
    expect(encodeMetadata({ [REQUEST_ID_KEY]: 'r' })).toBe('{"x-request-id":"r"}')
  })

  it('passes on the propagating keys only', () => {
    expect(propagatedMetadata(NO_METADATA)).toBe(NO_METADATA)
    expect(propagatedMetadata({ [REQUEST_ID_KEY]: 'r', [CALLER_KEY]: 'eyJ9' })).toEqual({
      [REQUEST_ID_KEY]: 'r',
      [CALLER_KEY]: 'eyJ9',
    })
    expect(propagatedMetadata({ 'x-per-hop': 'token' })).toBe(NO_METADATA)
  })

  it('carries a caller as base64url JSON and reads it back; refuses what cannot travel', () => {
    const caller = { id: 'u1', name: 'Zoë', roles: ['admin'] }
    const value = encodeCaller(caller)
    expect(typeof value).toBe('string')
    expect(value).toMatch(/^[A-Za-z0-9_-]+$/)
    expect(metadataFromHeaders({ [CALLER_KEY]: value as string })).toEqual({ [CALLER_KEY]: value })
    expect(decodeCaller(value as string)).toEqual(caller)
    expect(encodeCaller('u1')).toEqual({ error: 'a caller is a JSON object, e.g. { id: "u1" }' })
    expect(encodeCaller([1])).toHaveProperty('error')
    expect(encodeCaller({ big: 'x'.repeat(MAX_CALLER_BYTES) })).toHaveProperty('error')
    // The largest caller that may travel passes the header's own rule.
    const largest = encodeCaller({ b: 'x'.repeat(MAX_CALLER_BYTES - 8) })
    expect(typeof largest === 'string' && metadataFromHeaders({ [CALLER_KEY]: largest })).toEqual({
      [CALLER_KEY]: largest,
    })
    expect(decodeCaller('bm90IGpzb24')).toBeUndefined()
    expect(decodeCaller(Buffer.from('[1]').toString('base64url'))).toBeUndefined()
  })
})
