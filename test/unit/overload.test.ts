import { TRPCError } from '@trpc/server'
import { TRPC_ERROR_CODES_BY_KEY } from '@trpc/server/rpc'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { RemoteProcedureError } from '../../framework/client/call-errors.js'
import { initService } from '../../framework/index.js'
import { ERROR_CODES } from '../../framework/internal/errors.js'
import {
  isOverloadedAnswer,
  OVERLOADED_CODE,
  OVERLOADED_DATA,
} from '../../framework/protocol/overload.js'
import { createInvoker } from '../../framework/runtime/invoker.js'
import { LoadSampler } from '../../framework/runtime/load.js'
import { InflightLimit } from '../../framework/runtime/overload.js'
import { ServedCalls } from '../../framework/runtime/served-calls.js'
import { ServerMetrics } from '../../framework/telemetry/server-metrics.js'

const log = pino({ level: 'silent' })

function limitOf(max: number) {
  const t = initService()
  const router = t.router({ get: t.procedure.query(() => 'ok') })
  const load = new LoadSampler()
  const invoker = createInvoker({
    router,
    context: () => ({}) as never,
    load,
    served: new ServedCalls({ get: 'query' }),
    log,
  })
  const registry = new Registry()
  const metrics = new ServerMetrics(registry, { get: 'query' })
  const limit = new InflightLimit({ load, max, refuse: invoker.refuse, log, metrics })
  const shedCount = async (transport: string) =>
    (await registry.getSingleMetric('framework_server_shed_total')?.get())?.values.find(
      (value) => value.labels.transport === transport,
    )?.value
  return { load, limit, shedCount, close: () => load.close() }
}

describe('InflightLimit', () => {
  it('sheds only once the in-flight count reaches the limit, counting each shed by transport', async () => {
    const { load, limit, shedCount, close } = limitOf(2)
    load.inflight = 1
    expect(limit.sheds('stream')).toBe(false)
    load.inflight = 2
    expect(limit.sheds('stream')).toBe(true)
    expect(limit.sheds('trpc')).toBe(true)
    expect(limit.sheds('trpc')).toBe(true)
    expect(await shedCount('stream')).toBe(1)
    expect(await shedCount('trpc')).toBe(2)
    // Every transport's series exists from the start (a dashboard reads 0, not "no data").
    expect(await shedCount('rpc')).toBe(0)
    load.inflight = 1
    expect(limit.sheds('rpc')).toBe(false)
    close()
  })

  it('never sheds with limit 0 (shedding off)', () => {
    const { load, limit, close } = limitOf(0)
    load.inflight = 1_000_000
    expect(limit.sheds('rpc')).toBe(false)
    close()
  })

  it("answers in tRPC's SERVICE_UNAVAILABLE shape, marked as not run, naming the limit", () => {
    const { limit, close } = limitOf(7)
    const body = JSON.parse(limit.answerJson) as {
      error: { message: string; code: number; data: Record<string, unknown> }
    }
    expect(body.error.code).toBe(TRPC_ERROR_CODES_BY_KEY.SERVICE_UNAVAILABLE)
    expect(body.error.data).toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
      httpStatus: 503,
      ...OVERLOADED_DATA,
    })
    expect(body.error.message).toMatch(/in-flight limit \(7 calls, FRAMEWORK_MAX_INFLIGHT\)/)
    expect(isOverloadedAnswer(503, body)).toBe(true)
    close()
  })
})

describe('isOverloadedAnswer', () => {
  it('is true only for a 503 carrying the marker: a plain 503 may come from a call that ran', () => {
    const plain = {
      error: { message: 'x', data: { code: 'SERVICE_UNAVAILABLE', httpStatus: 503 } },
    }
    const marked = { error: { ...plain.error, data: { ...plain.error.data, ...OVERLOADED_DATA } } }
    expect(isOverloadedAnswer(503, marked)).toBe(true)
    expect(isOverloadedAnswer(503, plain)).toBe(false)
    expect(isOverloadedAnswer(500, marked)).toBe(false)
    expect(isOverloadedAnswer(503, undefined)).toBe(false)
    expect(isOverloadedAnswer(503, 'text')).toBe(false)
  })

  it("is one of the framework's stable error codes", () => {
    expect(Object.keys(ERROR_CODES)).toContain(OVERLOADED_CODE)
  })

  it('cannot be forged by a procedure: its SERVICE_UNAVAILABLE, or a nested shed, carries no marker', async () => {
    const t = initService()
    const router = t.router({
      down: t.procedure.query(() => {
        throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: OVERLOADED_CODE })
      }),
      // Its own dependency shed the call and nowhere else could take it: this procedure ran.
      nested: t.procedure.query(() => {
        throw new RemoteProcedureError('cache.get (instance c1)', {
          message: 'instance over its in-flight limit',
          code: 'SERVICE_UNAVAILABLE',
          httpStatus: 503,
          data: { code: 'SERVICE_UNAVAILABLE', httpStatus: 503, ...OVERLOADED_DATA },
        })
      }),
    })
    const load = new LoadSampler()
    const invoker = createInvoker({
      router,
      context: () => ({}) as never,
      load,
      served: new ServedCalls({ down: 'query', nested: 'query' }),
      log,
    })
    for (const path of ['down', 'nested']) {
      const outcome = await invoker.call(path, 'query', undefined, undefined, 0)
      expect(outcome.status).toBe(503)
      expect(isOverloadedAnswer(outcome.status, outcome.body)).toBe(false)
    }
    load.close()
  })
})
