import { initTRPC, TRPCError } from '@trpc/server'
import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { initService } from '../../framework/index.js'
import { NO_METADATA } from '../../framework/protocol/metadata.js'
import type { ProcedureKind } from '../../framework/protocol/procedure-kind.js'
import type { ContextFactory } from '../../framework/runtime/call-context.js'
import { directProcedure } from '../../framework/runtime/direct-procedure.js'
import { createInvoker, encodeOutcome } from '../../framework/runtime/invoker.js'
import type { LoadSampler } from '../../framework/runtime/load.js'
import { ServedCalls } from '../../framework/runtime/served-calls.js'

// The direct path (a parser-only procedure's chain built once) against tRPC's own runner: a corpus
// of procedures and inputs through both invokers, answers compared byte for byte (status and the
// encoded body), and the run count of each resolver compared too.

const resolverRuns = new Map<string, number>()
function ran(path: string): void {
  resolverRuns.set(path, (resolverRuns.get(path) ?? 0) + 1)
}

const t = initService()
/** What tRPC passes a resolver at runtime beyond its declared types. */
type RuntimeOptions = { type?: string; meta?: unknown; getRawInput: () => Promise<unknown> }
const full = (opts: object) => opts as RuntimeOptions
const service = t.router({
  noInput: t.procedure.query((opts) => {
    ran('noInput')
    return { instance: opts.ctx.instance.id, path: opts.path, type: full(opts).type }
  }),
  object: t.procedure.input(z.object({ key: z.string().min(1).max(8) })).query(({ input }) => {
    ran('object')
    return { echo: input.key }
  }),
  merged: t.procedure
    .input(z.object({ a: z.number() }))
    .input(z.object({ b: z.string().default('bee') }))
    .mutation(({ input }) => {
      ran('merged')
      return input
    }),
  scalar: t.procedure.input(z.string().transform((s) => s.length)).query(({ input }) => {
    ran('scalar')
    return input * 2
  }),
  asyncRefine: t.procedure
    .input(z.object({ n: z.number() }).refine(async (v) => v.n !== 13, 'unlucky'))
    .query(({ input }) => {
      ran('asyncRefine')
      return input.n
    }),
  returnsUndefined: t.procedure.mutation(() => {
    ran('returnsUndefined')
    return undefined
  }),
  throwsTrpc: t.procedure.input(z.object({ id: z.number() })).query(({ input }) => {
    ran('throwsTrpc')
    throw new TRPCError({ code: 'NOT_FOUND', message: `no item ${input.id}` })
  }),
  throwsPlain: t.procedure.query(async () => {
    ran('throwsPlain')
    throw new Error('boom')
  }),
  throwsString: t.procedure.query(() => {
    ran('throwsString')
    throw 'a string'
  }),
  withMeta: t.procedure.meta({ tag: 'm' }).query((opts) => {
    ran('withMeta')
    return full(opts).meta
  }),
  options: t.procedure.input(z.object({ x: z.number() })).query((opts) => {
    ran('options')
    // Every option the resolver can read, but the functions (their identity differs by path).
    const {
      ctx: _ctx,
      getRawInput: _raw,
      next: _next,
      ...rest
    } = opts as typeof opts & RuntimeOptions & { next?: unknown }
    return {
      ...rest,
      keys: Object.keys(opts)
        .filter((k) => k !== 'next')
        .sort(),
    }
  }),
  rawInput: t.procedure.input(z.object({ x: z.number() })).query(async (opts) => {
    ran('rawInput')
    return await full(opts).getRawInput()
  }),
  // Awaited like promises (tRPC awaits both): a resolver's thenable, a parser's promise, and a
  // synchronous parser followed by an asynchronous one.
  thenable: t.procedure.query(() => {
    ran('thenable')
    return {
      // biome-ignore lint/suspicious/noThenProperty: a thenable on purpose
      then(resolve: (value: unknown) => void) {
        resolve({ via: 'thenable' })
      },
    }
  }),
  asyncParser: t.procedure
    .input(async (value: unknown) => {
      if (typeof value !== 'number') throw new Error('a number, please')
      return value
    })
    .query(({ input }) => {
      ran('asyncParser')
      return input + 1
    }),
  syncThenAsync: t.procedure
    .input(z.object({ a: z.number() }))
    .input(async (value: unknown) => ({ b: String((value as { b?: unknown }).b ?? 'none') }))
    .mutation(({ input }) => {
      ran('syncThenAsync')
      return input
    }),
  // Shapes the direct path must leave to tRPC's runner (and still answer identically).
  withMiddleware: t.procedure
    .use(({ ctx, next }) => next({ ctx: { ...ctx, extra: 'added' } }))
    .input(z.object({ v: z.number() }))
    .query(({ ctx, input }) => {
      ran('withMiddleware')
      return { extra: (ctx as { extra?: string }).extra, v: input.v }
    }),
  refusedByMiddleware: t.procedure
    .use(() => {
      throw new TRPCError({ code: 'FORBIDDEN', message: 'no' })
    })
    .query(() => {
      ran('refusedByMiddleware')
      return 'never'
    }),
  withOutput: t.procedure
    .input(z.object({ good: z.boolean() }))
    .output(z.object({ n: z.number() }))
    .query(({ input }) => {
      ran('withOutput')
      return (input.good ? { n: 1 } : { n: 'one' }) as { n: number }
    }),
  nested: t.router({
    deep: t.procedure.input(z.object({ q: z.string() })).query(({ input }) => {
      ran('nested.deep')
      return `deep ${input.q}`
    }),
  }),
})

// A second root with its own error formatter (a field only the formatter adds). isDev false, as in
// production: in development the shape carries the stack, which names the runner's own frames.
const custom = initTRPC.context<{ instance: { id: string } }>().create({
  isDev: false,
  errorFormatter: ({ shape, error }) => ({ ...shape, data: { ...shape.data, custom: error.code } }),
})
const customRouter = custom.router({
  fails: custom.procedure.input(z.object({ n: z.number().int() })).mutation(({ input }) => {
    ran('fails')
    if (input.n > 0) throw new TRPCError({ code: 'CONFLICT', message: 'taken' })
    return 'ok'
  }),
})

const corpus: { path: string; kind: ProcedureKind; inputs: unknown[] }[] = [
  { path: 'noInput', kind: 'query', inputs: [undefined, { ignored: true }] },
  { path: 'noInput', kind: 'mutation', inputs: [undefined] },
  {
    path: 'object',
    kind: 'query',
    inputs: [
      { key: 'a' },
      { key: '' },
      { key: 'x'.repeat(9) },
      5,
      null,
      undefined,
      { key: 'a', extra: 1 },
    ],
  },
  { path: 'merged', kind: 'mutation', inputs: [{ a: 1 }, { a: 1, b: 'x' }, { b: 'x' }, [1, 2]] },
  { path: 'scalar', kind: 'query', inputs: ['abc', 3, undefined] },
  { path: 'asyncRefine', kind: 'query', inputs: [{ n: 1 }, { n: 13 }, { n: 'x' }] },
  { path: 'returnsUndefined', kind: 'mutation', inputs: [undefined] },
  { path: 'throwsTrpc', kind: 'query', inputs: [{ id: 7 }, { id: 'x' }] },
  { path: 'throwsPlain', kind: 'query', inputs: [undefined] },
  { path: 'throwsString', kind: 'query', inputs: [undefined] },
  { path: 'withMeta', kind: 'query', inputs: [undefined] },
  { path: 'options', kind: 'query', inputs: [{ x: 1 }] },
  { path: 'rawInput', kind: 'query', inputs: [{ x: 1, more: 'kept' }] },
  { path: 'thenable', kind: 'query', inputs: [undefined] },
  { path: 'asyncParser', kind: 'query', inputs: [1, 'x'] },
  { path: 'syncThenAsync', kind: 'mutation', inputs: [{ a: 1, b: 2 }, { a: 1 }, { a: 'x' }] },
  { path: 'withMiddleware', kind: 'query', inputs: [{ v: 1 }, { v: 'x' }] },
  { path: 'refusedByMiddleware', kind: 'query', inputs: [undefined] },
  { path: 'withOutput', kind: 'query', inputs: [{ good: true }, { good: false }] },
  { path: 'nested.deep', kind: 'query', inputs: [{ q: 'z' }, {}] },
  { path: 'missing', kind: 'query', inputs: [undefined] },
]

const context: ContextFactory = () =>
  ({ instance: { id: 'i-1' }, log: pino({ level: 'silent' }), deps: {} }) as never

function invokers(router: Parameters<typeof createInvoker>[0]['router']) {
  const common = {
    router,
    context,
    load: { inflight: 0 } as LoadSampler,
    served: new ServedCalls({}),
    log: pino({ level: 'silent' }),
  }
  return {
    direct: createInvoker({ ...common, direct: true }),
    trpc: createInvoker({ ...common, direct: false }),
  }
}

async function answer(
  invoker: ReturnType<typeof createInvoker>,
  path: string,
  kind: ProcedureKind,
  input: unknown,
) {
  resolverRuns.clear()
  const outcome = await invoker.call(path, kind, input, undefined, 0, NO_METADATA)
  return { ...encodeOutcome(invoker, outcome, path), runs: Object.fromEntries(resolverRuns) }
}

describe('direct procedures answer exactly as tRPC runs them', () => {
  it('takes the direct path for parser-only procedures and leaves the rest to tRPC', () => {
    const procedures = service._def.procedures as Record<string, unknown>
    const direct = Object.keys(procedures).filter((path) => directProcedure(procedures[path]))
    expect(direct.sort()).toEqual(
      [
        'asyncParser',
        'asyncRefine',
        'merged',
        'nested.deep',
        'noInput',
        'object',
        'options',
        'rawInput',
        'returnsUndefined',
        'scalar',
        'syncThenAsync',
        'thenable',
        'throwsPlain',
        'throwsString',
        'throwsTrpc',
        'withMeta',
      ].sort(),
    )
  })

  it('gives byte-identical answers over the corpus', async () => {
    const { direct, trpc } = invokers(service)
    let compared = 0
    for (const { path, kind, inputs } of corpus) {
      for (const input of inputs) {
        const viaTrpc = await answer(trpc, path, kind, input)
        const viaDirect = await answer(direct, path, kind, input)
        expect(viaDirect, `${kind} ${path} ${JSON.stringify(input)}`).toEqual(viaTrpc)
        compared++
      }
    }
    // Not vacuous: the corpus holds successes, validation failures and thrown errors.
    const statuses = new Set<number>()
    for (const { path, kind, inputs } of corpus) {
      for (const input of inputs) statuses.add((await answer(direct, path, kind, input)).status)
    }
    expect([...statuses].sort()).toEqual([200, 400, 403, 404, 405, 500])
    expect(compared).toBe(corpus.reduce((n, entry) => n + entry.inputs.length, 0))
  })

  it('answers a procedure that finishes at once without a promise, an async one with one', async () => {
    const { direct } = invokers(service)
    const call = (path: string, kind: ProcedureKind, input: unknown) =>
      direct.call(path, kind, input, undefined, 0, NO_METADATA)
    // Synchronous parsers and resolver: the outcome itself, answered or refused.
    const answered = call('object', 'query', { key: 'a' })
    expect(answered).not.toBeInstanceOf(Promise)
    expect(answered).toEqual({ status: 200, body: { result: { data: { echo: 'a' } } } })
    const refused = call('object', 'query', { key: '' })
    expect(refused).not.toBeInstanceOf(Promise)
    expect((refused as { status: number }).status).toBe(400)
    expect(call('throwsTrpc', 'query', { id: 1 })).not.toBeInstanceOf(Promise)
    expect(call('missing', 'query', undefined)).not.toBeInstanceOf(Promise)
    // Anything asynchronous: a promise of the same outcome tRPC's runner gives.
    for (const [path, kind, input] of [
      ['asyncRefine', 'query', { n: 1 }],
      ['asyncParser', 'query', 1],
      ['syncThenAsync', 'mutation', { a: 1 }],
      ['thenable', 'query', undefined],
      ['throwsPlain', 'query', undefined],
      ['rawInput', 'query', { x: 1 }],
    ] as const) {
      const outcome = call(path, kind, input)
      expect(outcome, path).toBeInstanceOf(Promise)
      await outcome
    }
  })

  it('keeps a custom error formatter and a non-object merge the same', async () => {
    const { direct, trpc } = invokers(customRouter)
    for (const input of [{ n: 0 }, { n: 1 }, { n: 1.5 }, 'x']) {
      const viaTrpc = await answer(trpc, 'fails', 'mutation', input)
      expect(await answer(direct, 'fails', 'mutation', input)).toEqual(viaTrpc)
    }
    const conflict = await answer(direct, 'fails', 'mutation', { n: 1 })
    expect(JSON.parse(conflict.text).error.data.custom).toBe('CONFLICT')
  })
})
