import type { IncomingHttpHeaders } from 'node:http'
import { isCarriableTracestate, parseTraceparent } from './trace-context.js'

/**
 * Call metadata: what travels with a call besides its input and deadline, as lower-case header
 * names → string values (`x-request-id`, the caller, W3C `traceparent`, later a per-hop token).
 * On requests (`/_rpc/<path>`, `/trpc/<path>`) each entry is an HTTP header; on the RPC stream
 * and in `/_rpc/_batch` items it is a JSON object after the deadline, sent only when non-empty.
 */
export type CallMetadata = Readonly<Record<string, string>>

/** No metadata: the hot path's value, shared. */
export const NO_METADATA: CallMetadata = Object.freeze({})

/** The request id the edge accepts or makes; every nested call carries it on. */
export const REQUEST_ID_KEY = 'x-request-id'
/**
 * The end user a call is made for, as the gateway's `authenticate()` returned it: base64url of
 * its JSON (`encodeCaller`). Asserted, not signed: anyone who reaches a service's port directly
 * can claim any caller. With call tokens on, it never travels: the principal goes signed, in a
 * PRINCIPAL_KEY token, and a service that requires tokens ignores this key from the wire.
 */
export const CALLER_KEY = 'x-framework-caller'
/**
 * A call token (protocol/call-token.ts) whose `principal` claim is the end user the call is made
 * for: sent instead of CALLER_KEY when call tokens are on. Per hop: each service signs its own
 * for its nested calls. Any visible ASCII is carried, so a bad token is refused by the token
 * check (401), not as malformed metadata.
 */
export const PRINCIPAL_KEY = 'x-framework-principal'
/** W3C trace context: the calling span (see protocol/trace-context.ts). */
export const TRACEPARENT_KEY = 'traceparent'
/** W3C trace context: vendor entries, carried with a valid `traceparent` only. */
export const TRACESTATE_KEY = 'tracestate'

interface MetadataKey {
  /** Carried on to the nested calls made while serving the call (a per-hop key is not). */
  propagate: boolean
  /** Values accepted; anything else refuses the call with 400 (or is dropped, see `lenient`). */
  pattern: { test(value: string): boolean }
  /** The accepted form, for the refusal's message. */
  accepted: string
  /** A bad value is dropped instead of refusing the call (trace context never fails a call). */
  lenient?: true
}

/** Most bytes of a caller's JSON (before base64url). */
export const MAX_CALLER_BYTES = 2048

/** The keys the framework reads. Unknown keys on the stream and in batches are ignored. */
const METADATA_KEYS: ReadonlyMap<string, MetadataKey> = new Map<string, MetadataKey>([
  [
    REQUEST_ID_KEY,
    {
      propagate: true,
      pattern: /^[\x21-\x7e]{1,128}$/,
      accepted: '1-128 visible ASCII characters, e.g. a UUID',
    },
  ],
  [
    CALLER_KEY,
    {
      propagate: true,
      // base64url of at most MAX_CALLER_BYTES bytes of JSON.
      pattern: /^[A-Za-z0-9_-]{1,2732}$/,
      accepted: `base64url of a JSON object of at most ${MAX_CALLER_BYTES} bytes`,
    },
  ],
  [
    PRINCIPAL_KEY,
    {
      propagate: false,
      pattern: /^[\x21-\x7e]+$/,
      accepted: 'a call token (a JWT)',
    },
  ],
  [
    TRACEPARENT_KEY,
    {
      // Forwarded unchanged by a service that does not trace; replaced by one that does.
      propagate: true,
      pattern: { test: (value) => parseTraceparent(value) !== undefined },
      accepted: 'a W3C traceparent',
      lenient: true,
    },
  ],
  [
    TRACESTATE_KEY,
    {
      propagate: true,
      pattern: { test: isCarriableTracestate },
      accepted: 'a W3C tracestate',
      lenient: true,
    },
  ],
])

/** Whether `value` may travel as a request id (what a gateway accepts from a client). */
export function isRequestId(value: string): boolean {
  return METADATA_KEYS.get(REQUEST_ID_KEY)!.pattern.test(value)
}

/**
 * `metadata` plus the W3C trace context of `headers` (a valid `traceparent`, and its
 * `tracestate`): what an edge that reads nothing else from its callers passes on.
 */
export function withTraceContext(
  metadata: CallMetadata,
  headers: IncomingHttpHeaders,
): CallMetadata {
  const traceparent = headers[TRACEPARENT_KEY]
  if (typeof traceparent !== 'string' || !parseTraceparent(traceparent)) return metadata
  const tracestate = headers[TRACESTATE_KEY]
  return typeof tracestate === 'string' && isCarriableTracestate(tracestate)
    ? { ...metadata, [TRACEPARENT_KEY]: traceparent, [TRACESTATE_KEY]: tracestate }
    : { ...metadata, [TRACEPARENT_KEY]: traceparent }
}

/** Most entries in one call's metadata object (unknown keys included). */
export const MAX_METADATA_ENTRIES = 16
/** Most bytes of one call's metadata, keys and values added up (unknown keys included). */
export const MAX_METADATA_BYTES = 8192

const KEY_SHAPE = /^[a-z0-9][a-z0-9-]{0,63}$/
const VALUE_SHAPE = /^[\x20-\x7e]*$/

/** The metadata of a request, from its headers (the known keys only), or why it is refused. */
export function metadataFromHeaders(headers: IncomingHttpHeaders): CallMetadata | string {
  let metadata: Record<string, string> | undefined
  for (const [key, spec] of METADATA_KEYS) {
    const value = headers[key]
    if (value === undefined) continue
    if (typeof value !== 'string') {
      if (spec.lenient) continue
      return `header ${key} is sent more than once; send it once`
    }
    if (!spec.pattern.test(value)) {
      if (spec.lenient) continue
      return `header ${key} is invalid: use ${spec.accepted}`
    }
    metadata ??= {}
    metadata[key] = value
  }
  return withoutOrphanTracestate(metadata) ?? NO_METADATA
}

/**
 * The metadata element of a stream frame or batch item (a JSON object of strings; undefined for
 * none), or why it is refused. Unknown keys count toward the limits and are dropped.
 */
export function parseMetadata(value: unknown): CallMetadata | string {
  if (value === undefined || value === null) return NO_METADATA
  if (typeof value !== 'object' || Array.isArray(value)) {
    return 'call metadata is a JSON object of lower-case header names to strings'
  }
  const entries = Object.entries(value)
  if (entries.length > MAX_METADATA_ENTRIES) {
    return `call metadata has ${entries.length} entries, over the limit of ${MAX_METADATA_ENTRIES}`
  }
  let bytes = 0
  let metadata: Record<string, string> | undefined
  for (const [key, entry] of entries) {
    if (!KEY_SHAPE.test(key) || typeof entry !== 'string' || !VALUE_SHAPE.test(entry)) {
      return `call metadata entry ${JSON.stringify(key).slice(0, 80)} is invalid: keys are lower-case header names, values printable ASCII strings`
    }
    bytes += key.length + entry.length
    if (bytes > MAX_METADATA_BYTES) {
      return `call metadata is over ${MAX_METADATA_BYTES} bytes; send less`
    }
    const spec = METADATA_KEYS.get(key)
    if (!spec) continue
    if (!spec.pattern.test(entry)) {
      if (spec.lenient) continue
      return `call metadata ${key} is invalid: use ${spec.accepted}`
    }
    metadata ??= {}
    metadata[key] = entry
  }
  return withoutOrphanTracestate(metadata) ?? NO_METADATA
}

/** A `tracestate` means nothing without a valid `traceparent` (W3C): dropped with it. */
function withoutOrphanTracestate(
  metadata: Record<string, string> | undefined,
): Record<string, string> | undefined {
  if (metadata?.[TRACESTATE_KEY] === undefined || metadata[TRACEPARENT_KEY] !== undefined) {
    return metadata
  }
  delete metadata[TRACESTATE_KEY]
  for (const _ in metadata) return metadata
  return undefined
}

/** Whether there is any metadata to send. */
export function hasMetadata(metadata: CallMetadata | undefined): metadata is CallMetadata {
  if (metadata === undefined || metadata === NO_METADATA) return false
  for (const _ in metadata) return true
  return false
}

/** The metadata's JSON for a frame or batch item, or undefined when there is none to send. */
export function encodeMetadata(metadata: CallMetadata | undefined): string | undefined {
  return hasMetadata(metadata) ? JSON.stringify(metadata) : undefined
}

/** The entries a nested call made while serving this call carries on. */
export function propagatedMetadata(metadata: CallMetadata): CallMetadata {
  if (metadata === NO_METADATA) return NO_METADATA
  let onward: Record<string, string> | undefined
  for (const key in metadata) {
    if (METADATA_KEYS.get(key)?.propagate) {
      onward ??= {}
      onward[key] = metadata[key]!
    }
  }
  return onward ?? NO_METADATA
}

/** A caller (a JSON object) as the CALLER_KEY value, or why it cannot travel. */
export function encodeCaller(caller: unknown): string | { error: string } {
  if (typeof caller !== 'object' || caller === null || Array.isArray(caller)) {
    return { error: 'a caller is a JSON object, e.g. { id: "u1" }' }
  }
  let json: string
  try {
    json = JSON.stringify(caller)
  } catch (err) {
    return { error: `a caller must be JSON (${(err as Error).message})` }
  }
  const bytes = Buffer.from(json, 'utf8')
  if (bytes.length > MAX_CALLER_BYTES) {
    return { error: `a caller's JSON is ${bytes.length} bytes, over ${MAX_CALLER_BYTES}` }
  }
  return bytes.toString('base64url')
}

/** The caller a CALLER_KEY value names, or undefined when it is not base64url of a JSON object. */
export function decodeCaller(value: string): Readonly<Record<string, unknown>> | undefined {
  try {
    const caller: unknown = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'))
    return typeof caller === 'object' && caller !== null && !Array.isArray(caller)
      ? (caller as Record<string, unknown>)
      : undefined
  } catch {
    return undefined
  }
}
