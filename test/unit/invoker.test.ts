import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { resolveCallAuth } from '../../framework/config/call-auth.js'
import { initService } from '../../framework/index.js'
import { NO_METADATA } from '../../framework/protocol/metadata.js'
import { CallAuth } from '../../framework/runtime/call-auth.js'
import { createInvoker, type Outcome, settlesLater } from '../../framework/runtime/invoker.js'
import { LoadSampler } from '../../framework/runtime/load.js'
import { ServedCalls } from '../../framework/runtime/served-calls.js'

// The invoker's contract: it answers every call with an outcome, synchronously or as a promise,
// never a throw or a rejection, and counts every call in and out once, even when something of its
// own (here the logger it reports a failure with) throws.

const t = initService()
const router = t.router({
  failsAtOnce: t.procedure.query(() => {
    throw new Error('boom')
  }),
  failsLater: t.procedure.query(async () => {
    throw new Error('boom later')
  }),
  ok: t.procedure.query(() => 'fine'),
})

function invokerWith(log: pino.Logger) {
  const load = new LoadSampler()
  const served = new ServedCalls({ failsAtOnce: 'query', failsLater: 'query', ok: 'query' })
  const invoker = createInvoker({ router, context: () => ({}) as never, load, served, log })
  return { invoker, load, served, close: () => load.close() }
}

describe('the invoker never throws', () => {
  it('answers a fixed 500 when its own logger throws, sync and async, counting each call once', async () => {
    let reports = 0
    // A logger whose error lines throw (a broken serializer or hook).
    const log = pino({
      level: 'info',
      hooks: {
        logMethod(args, method, level) {
          if (level >= 50) {
            reports++
            throw new Error('the logger broke')
          }
          method.apply(this, args)
        },
      },
    })
    const { invoker, load, served, close } = invokerWith(log)
    try {
      const atOnce = invoker.call('failsAtOnce', 'query', undefined, undefined, 0, NO_METADATA)
      expect(settlesLater(atOnce)).toBe(false)
      const later = invoker.call('failsLater', 'query', undefined, undefined, 0, NO_METADATA)
      expect(settlesLater(later)).toBe(true)
      const outcomes: Outcome[] = [atOnce as Outcome, await later]
      for (const outcome of outcomes) {
        expect(outcome.status).toBe(500)
        expect(JSON.stringify(outcome.body)).toContain('internal error (see the service log)')
      }
      // The procedure's failure was reported (and threw), then the invoker's own report (threw).
      expect(reports).toBe(4)
      expect(load.inflight).toBe(0)
      expect(served.snapshot()).toEqual({ failsAtOnce: 1, failsLater: 1 })
      // The invoker still works afterwards.
      expect(invoker.call('ok', 'query', undefined, undefined, 0, NO_METADATA)).toEqual({
        status: 200,
        body: { result: { data: 'fine' } },
      })
    } finally {
      close()
    }
  })

  it('runs a token-checked call synchronously when no signature is awaited', () => {
    const load = new LoadSampler()
    const auth = new CallAuth(
      resolveCallAuth({ FRAMEWORK_SECRET: 's'.repeat(48) }),
      'cache',
      'default',
    )
    const served = new ServedCalls({ ok: 'query' })
    const invoker = createInvoker({
      router,
      context: () => ({}) as never,
      load,
      served,
      log: pino({ level: 'silent' }),
      auth,
    })
    try {
      const caller = { role: 'api', expiresAt: Date.now() + 60_000 } as never
      const answered = invoker.call('ok', 'query', undefined, undefined, 0, NO_METADATA, caller)
      expect(settlesLater(answered)).toBe(false)
      expect(answered).toEqual({ status: 200, body: { result: { data: 'fine' } } })
      const refused = invoker.call('ok', 'query', undefined, undefined, 0, NO_METADATA, undefined)
      expect(settlesLater(refused)).toBe(false)
      expect((refused as Outcome).status).toBe(401)
      expect(load.inflight).toBe(0)
      expect(served.snapshot()).toEqual({ ok: 2 })
    } finally {
      load.close()
    }
  })
})
