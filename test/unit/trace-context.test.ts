import { describe, expect, it } from 'vitest'
import {
  metadataFromHeaders,
  NO_METADATA,
  parseMetadata,
  propagatedMetadata,
  REQUEST_ID_KEY,
  TRACEPARENT_KEY,
  TRACESTATE_KEY,
} from '../../framework/protocol/metadata.js'
import {
  formatTraceparent,
  MAX_TRACEPARENT_LENGTH,
  parseTraceparent,
} from '../../framework/protocol/trace-context.js'

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const SPAN = '00f067aa0ba902b7'
const VALID = `00-${TRACE}-${SPAN}-01`

describe('W3C traceparent', () => {
  it('reads a version-00 value: trace id, parent span id, flags', () => {
    expect(parseTraceparent(VALID)).toEqual({ traceId: TRACE, spanId: SPAN, flags: 1 })
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-00`)).toEqual({
      traceId: TRACE,
      spanId: SPAN,
      flags: 0,
    })
  })

  it('version ff is invalid', () => {
    expect(parseTraceparent(`ff-${TRACE}-${SPAN}-01`)).toBeUndefined()
  })

  it('all-zero trace or span ids are invalid', () => {
    expect(parseTraceparent(`00-${'0'.repeat(32)}-${SPAN}-01`)).toBeUndefined()
    expect(parseTraceparent(`00-${TRACE}-${'0'.repeat(16)}-01`)).toBeUndefined()
  })

  it('wrong lengths are invalid', () => {
    expect(parseTraceparent(`00-${TRACE.slice(1)}-${SPAN}-01`)).toBeUndefined()
    expect(parseTraceparent(`00-${TRACE}0-${SPAN}-01`)).toBeUndefined()
    expect(parseTraceparent(`00-${TRACE}-${SPAN.slice(1)}-01`)).toBeUndefined()
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-1`)).toBeUndefined()
    expect(parseTraceparent(`0-${TRACE}-${SPAN}-01`)).toBeUndefined()
    expect(parseTraceparent('')).toBeUndefined()
    expect(parseTraceparent(undefined)).toBeUndefined()
    // Version 00 has exactly four fields.
    expect(parseTraceparent(`${VALID}-extra`)).toBeUndefined()
  })

  it('upper-case hex is invalid', () => {
    expect(parseTraceparent(`00-${TRACE.toUpperCase()}-${SPAN}-01`)).toBeUndefined()
    expect(parseTraceparent(`00-${TRACE}-${SPAN.toUpperCase()}-01`)).toBeUndefined()
    expect(parseTraceparent(`0A-${TRACE}-${SPAN}-01`)).toBeUndefined()
  })

  it('a future version is read by its first four fields; more fields after a dash are ignored', () => {
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-01`)).toEqual({
      traceId: TRACE,
      spanId: SPAN,
      flags: 1,
    })
    expect(parseTraceparent(`cc-${TRACE}-${SPAN}-09-what-the-future-holds`)).toEqual({
      traceId: TRACE,
      spanId: SPAN,
      flags: 9,
    })
    // ... but the fifth field must start with a dash.
    expect(parseTraceparent(`cc-${TRACE}-${SPAN}-09x`)).toBeUndefined()
  })

  it('an oversized value is invalid', () => {
    const long = `01-${TRACE}-${SPAN}-01-${'a'.repeat(MAX_TRACEPARENT_LENGTH)}`
    expect(parseTraceparent(long)).toBeUndefined()
  })

  it('writes version 00, keeping only the sampled flag', () => {
    expect(formatTraceparent({ traceId: TRACE, spanId: SPAN, flags: 1 })).toBe(VALID)
    expect(formatTraceparent({ traceId: TRACE, spanId: SPAN, flags: 0x08 })).toBe(
      `00-${TRACE}-${SPAN}-00`,
    )
  })
})

describe('trace context in call metadata', () => {
  it('carries a valid traceparent and tracestate, on headers and in frames, onward to nested calls', () => {
    const sent = { [TRACEPARENT_KEY]: VALID, [TRACESTATE_KEY]: 'vendor=abc' }
    expect(metadataFromHeaders(sent)).toEqual(sent)
    expect(parseMetadata(sent)).toEqual(sent)
    expect(propagatedMetadata(sent)).toEqual(sent)
  })

  it('drops a malformed or oversized traceparent (and its tracestate) instead of refusing the call', () => {
    for (const bad of ['garbage', `ff-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-01`.repeat(10)]) {
      expect(metadataFromHeaders({ [TRACEPARENT_KEY]: bad, [TRACESTATE_KEY]: 'a=b' })).toBe(
        NO_METADATA,
      )
      expect(parseMetadata({ [TRACEPARENT_KEY]: bad, [TRACESTATE_KEY]: 'a=b' })).toBe(NO_METADATA)
      expect(
        parseMetadata({ [TRACEPARENT_KEY]: bad, [REQUEST_ID_KEY]: 'r1', [TRACESTATE_KEY]: 'a=b' }),
      ).toEqual({ [REQUEST_ID_KEY]: 'r1' })
    }
    // A header sent twice is dropped too.
    expect(metadataFromHeaders({ [TRACEPARENT_KEY]: [VALID, VALID] as unknown as string })).toBe(
      NO_METADATA,
    )
  })

  it('drops an oversized tracestate, keeping the traceparent', () => {
    expect(
      parseMetadata({ [TRACEPARENT_KEY]: VALID, [TRACESTATE_KEY]: `a=${'b'.repeat(600)}` }),
    ).toEqual({ [TRACEPARENT_KEY]: VALID })
  })
})
