import { randomFillSync } from 'node:crypto'
import type { TraceContext } from '../protocol/trace-context.js'

/*
 * The sampling decision, made before any span exists. With the SDK deciding, every call paid for a
 * span (ids drawn and hex-encoded, a context, a non-recording span object) even when only 1% are
 * kept: measured at ~12% fewer calls/s at 1% sampling. Here the configured sampler's rule is
 * applied to the trace id first; only a kept call reaches the SDK (whose own sampler is then
 * always-on), and a dropped one is a small object that makes its span id only if asked.
 *
 * The rules are the SDK's own, for the samplers OTEL_TRACES_SAMPLER may name (tracing.ts checks
 * the name): `traceidratio` keeps a trace when the XOR of its id's four 32-bit words is below
 * ratio × 0xffffffff (so every service keeps or drops the same trace), `parentbased_*` follows a
 * parent's sampled flag and applies the named rule to a root. test/unit/sampling.test.ts compares
 * the decisions with the SDK's samplers over random ids and parents.
 */

/**
 * Keep (record and export) a span of trace `traceId` whose parent is `parent` (none: a root)? A new
 * root's id is decided on the word XOR read from its bytes, its hex not made.
 */
export type SampleDecision = (
  parent: TraceContext | undefined,
  traceId: string | NewTraceId,
) => boolean

/** The decision OTEL_TRACES_SAMPLER(_ARG) describe; unset means `parentbased_always_on`. */
export function sampleDecision(env: NodeJS.ProcessEnv): SampleDecision {
  const name = env.OTEL_TRACES_SAMPLER?.trim() || 'parentbased_always_on'
  const base = name.replace(/^parentbased_/, '')
  const root = rootRule(base, env.OTEL_TRACES_SAMPLER_ARG)
  if (base === name) return (_parent, traceId) => root(traceId)
  return (parent, traceId) => (parent === undefined ? root(traceId) : (parent.flags & 1) === 1)
}

function rootRule(
  name: string,
  arg: string | undefined,
): (traceId: string | NewTraceId) => boolean {
  if (name === 'always_on') return () => true
  if (name === 'always_off') return () => false
  // traceidratio; the SDK reads a missing, unreadable or out-of-range ratio as 1 (tracing.ts
  // refuses the last two before this runs).
  const parsed = arg === undefined || arg.trim() === '' ? 1 : Number(arg)
  const ratio = Number.isNaN(parsed) || parsed < 0 || parsed > 1 ? 1 : parsed
  const upperBound = ratio === 1 ? 0x100000000 : Math.floor(ratio * 0xffffffff)
  return (traceId) =>
    (typeof traceId === 'string' ? accumulate(traceId) : traceId.accumulated) < upperBound
}

/** The XOR of a 32-hex-digit id's four 32-bit words (the SDK's `_accumulate`, char by char). */
function accumulate(traceId: string): number {
  let accumulated = 0
  for (let i = 0; i < 32; i += 8) {
    let word = 0
    for (let j = 0; j < 8; j++) {
      const c = traceId.charCodeAt(i + j)
      word = (word << 4) | (c < 58 ? c - 48 : c < 71 ? c - 55 : c - 87)
    }
    accumulated = (accumulated ^ word) >>> 0
  }
  return accumulated
}

/** Random bytes from a pooled buffer: one `randomFillSync` per POOL_BYTES, not one per id. */
const POOL_BYTES = 16_384
let pool = Buffer.alloc(0)
let offset = 0

/** The offset in `pool` of `bytes` fresh random bytes, not all zero (the invalid id). */
function take(bytes: number): number {
  if (offset + bytes > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(POOL_BYTES))
    offset = 0
  }
  const at = offset
  offset += bytes
  for (let i = at; i < at + bytes; i++) if (pool[i] !== 0) return at
  return take(bytes)
}

/**
 * A new root's trace id: 16 random bytes as four 32-bit words, their XOR read at once (all the
 * sampling decision needs), their hex made when first asked (a dropped call's id is often never
 * read). The words, not the pool: a call's span must not keep 16 KB alive.
 */
export class NewTraceId {
  readonly accumulated: number
  readonly #words: readonly [number, number, number, number]
  #hex: string | undefined

  constructor(bytes: Buffer, at: number) {
    this.#words = [
      bytes.readUInt32BE(at),
      bytes.readUInt32BE(at + 4),
      bytes.readUInt32BE(at + 8),
      bytes.readUInt32BE(at + 12),
    ]
    const [a, b, c, d] = this.#words
    this.accumulated = (a ^ b ^ c ^ d) >>> 0
  }

  /** 32 lower-case hex digits, not all zero. */
  get hex(): string {
    this.#hex ??= this.#words.map((word) => word.toString(16).padStart(8, '0')).join('')
    return this.#hex
  }
}

/** A new root's trace id. */
export function newRoot(): NewTraceId {
  const at = take(16)
  return new NewTraceId(pool, at)
}

/** A new trace id: 32 lower-case hex digits, not all zero. */
export function newTraceId(): string {
  const at = take(16)
  return pool.toString('hex', at, at + 16)
}

/** A new span id: 16 lower-case hex digits, not all zero. */
export function newSpanId(): string {
  const at = take(8)
  return pool.toString('hex', at, at + 8)
}

/**
 * The SDK's id generator, with one trace id pinned: a kept root span must carry the trace id its
 * decision was made on (other services decide on the same id). `pin` is followed synchronously by
 * the one `startSpan` that takes it.
 */
export class PinnedIds {
  #pinned: string | undefined

  pin(traceId: string): void {
    this.#pinned = traceId
  }

  generateTraceId(): string {
    const id = this.#pinned ?? newTraceId()
    this.#pinned = undefined
    return id
  }

  generateSpanId(): string {
    return newSpanId()
  }
}
