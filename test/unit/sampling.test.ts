import { ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api'
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  ParentBasedSampler,
  type Sampler,
  SamplingDecision,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base'
import { describe, expect, it } from 'vitest'
import type { TraceContext } from '../../framework/protocol/trace-context.js'
import {
  newRoot,
  newSpanId,
  newTraceId,
  PinnedIds,
  sampleDecision,
} from '../../framework/telemetry/sampling.js'

// The framework decides before a span exists; the SDK's samplers are the reference. Over random
// trace ids, with no parent and with sampled / unsampled remote parents, both must agree.

const ratio = (r: number) => new TraceIdRatioBasedSampler(r)
const SAMPLERS: { env: Record<string, string>; sdk: Sampler }[] = [
  { env: {}, sdk: new ParentBasedSampler({ root: new AlwaysOnSampler() }) },
  { env: { OTEL_TRACES_SAMPLER: 'always_on' }, sdk: new AlwaysOnSampler() },
  { env: { OTEL_TRACES_SAMPLER: 'always_off' }, sdk: new AlwaysOffSampler() },
  {
    env: { OTEL_TRACES_SAMPLER: 'parentbased_always_off' },
    sdk: new ParentBasedSampler({ root: new AlwaysOffSampler() }),
  },
  ...[0, 0.01, 0.25, 0.5, 0.999, 1].flatMap((r) => [
    {
      env: { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: String(r) },
      sdk: ratio(r),
    },
    {
      env: { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: String(r) },
      sdk: new ParentBasedSampler({ root: ratio(r) }),
    },
  ]),
  // A missing ratio is 1, as the SDK reads it from the environment.
  { env: { OTEL_TRACES_SAMPLER: 'traceidratio' }, sdk: ratio(1) },
]

function sdkKeeps(sampler: Sampler, parent: TraceContext | undefined, traceId: string): boolean {
  const context =
    parent === undefined
      ? ROOT_CONTEXT
      : trace.setSpanContext(ROOT_CONTEXT, {
          traceId: parent.traceId,
          spanId: parent.spanId,
          traceFlags: parent.flags,
          isRemote: true,
        })
  const { decision } = sampler.shouldSample(context, traceId, 'x', SpanKind.SERVER, {}, [])
  return decision === SamplingDecision.RECORD_AND_SAMPLED
}

describe('sampling decided before a span exists', () => {
  it('decides as the SDK samplers do, for roots and for sampled and unsampled parents', () => {
    let kept = 0
    let compared = 0
    for (const { env, sdk } of SAMPLERS) {
      const decide = sampleDecision(env)
      for (let i = 0; i < 3_000; i++) {
        const root = newRoot()
        const traceId = root.hex
        // A new root decides on the XOR read from its bytes; the same from its hex digits.
        expect(decide(undefined, root)).toBe(decide(undefined, traceId))
        const parents: (TraceContext | undefined)[] = [
          undefined,
          { traceId, spanId: newSpanId(), flags: 1 },
          { traceId, spanId: newSpanId(), flags: 0 },
        ]
        for (const parent of parents) {
          const ours = decide(parent, traceId)
          expect(ours, `${JSON.stringify(env)} ${traceId} ${parent?.flags}`).toBe(
            sdkKeeps(sdk, parent, traceId),
          )
          if (ours) kept++
          compared++
        }
      }
    }
    // Both outcomes occur (the comparison is not all-keep or all-drop).
    expect(kept).toBeGreaterThan(compared / 4)
    expect(kept).toBeLessThan(compared)
  })

  it('keeps about the ratio of root traces', () => {
    const decide = sampleDecision({
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.1',
    })
    let kept = 0
    for (let i = 0; i < 20_000; i++) if (decide(undefined, newTraceId())) kept++
    // 2,000 expected; ±5 standard deviations (σ ≈ 42).
    expect(kept).toBeGreaterThan(1_790)
    expect(kept).toBeLessThan(2_210)
  })

  it('makes valid, distinct ids, and hands a pinned trace id to the next span only', () => {
    const ids = new Set<string>()
    for (let i = 0; i < 2_000; i++) {
      const traceId = newTraceId()
      const spanId = newSpanId()
      expect(traceId).toMatch(/^[0-9a-f]{32}$/)
      expect(spanId).toMatch(/^[0-9a-f]{16}$/)
      ids.add(traceId)
    }
    expect(ids.size).toBe(2_000)
    const pinned = new PinnedIds()
    pinned.pin('0af7651916cd43dd8448eb211c80319c')
    expect(pinned.generateTraceId()).toBe('0af7651916cd43dd8448eb211c80319c')
    expect(pinned.generateTraceId()).not.toBe('0af7651916cd43dd8448eb211c80319c')
  })
})
