import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { lazyChild } from '../../framework/runtime/lazy-logger.js'

// ctx.log of a call with its own fields: a proxy that makes the pino child on first use. It must
// behave as that child would, and cost nothing until used.

function capture() {
  const lines: Record<string, unknown>[] = []
  const parent = pino(
    { level: 'info', base: { role: 'r' } },
    { write: (text: string) => lines.push(JSON.parse(text)) },
  ).child({ procedure: 'p' })
  return { lines, parent }
}

describe('lazyChild', () => {
  it('makes the child only when first used, once', () => {
    const { lines, parent } = capture()
    let made = 0
    const log = lazyChild(parent, () => {
      made++
      return { requestId: 'req-1' }
    })
    expect(made).toBe(0)
    log.info('one')
    log.warn({ extra: 1 }, 'two')
    expect(made).toBe(1)
    expect(lines).toMatchObject([
      { role: 'r', procedure: 'p', requestId: 'req-1', msg: 'one', level: 30 },
      { role: 'r', procedure: 'p', requestId: 'req-1', msg: 'two', extra: 1, level: 40 },
    ])
  })

  it('survives a spread of ctx (tRPC merges ctx so) and hands out children of the child', () => {
    const { lines, parent } = capture()
    const ctx = { log: lazyChild(parent, () => ({ trace_id: 't' })) }
    const merged = { ...ctx, extra: true }
    merged.log.child({ step: 2 }).info('nested')
    expect(lines).toMatchObject([{ procedure: 'p', trace_id: 't', step: 2, msg: 'nested' }])
    expect(merged.log.bindings()).toEqual({ role: 'r', procedure: 'p', trace_id: 't' })
  })

  it("keeps a grandchild's bindings and level on the grandchild", () => {
    const { lines, parent } = capture()
    const log = lazyChild(parent, () => ({ requestId: 'r' }))
    const verbose = log.child({ step: 2 }, { level: 'debug' })
    verbose.debug('from the grandchild')
    log.debug('not shown: the call logger is still at info')
    log.info('from the call logger')
    expect(verbose.isLevelEnabled('debug')).toBe(true)
    expect(log.isLevelEnabled('debug')).toBe(false)
    expect(log.bindings()).toEqual({ role: 'r', procedure: 'p', requestId: 'r' })
    expect(lines.map((line) => [line.msg, line.step])).toEqual([
      ['from the grandchild', 2],
      ['from the call logger', undefined],
    ])
  })

  it('sets what is set on it on the child, never on the parent', () => {
    const { lines, parent } = capture()
    const log = lazyChild(parent, () => ({ requestId: 'x' }))
    log.level = 'debug'
    expect(log.isLevelEnabled('debug')).toBe(true)
    expect(parent.isLevelEnabled('debug')).toBe(false)
    log.debug('shown')
    parent.debug('not shown')
    expect(lines.map((line) => line.msg)).toEqual(['shown'])
    expect('info' in log).toBe(true)
    expect(Object.getPrototypeOf(log)).toBe(parent)
    // A frozen logger would be a frozen empty target: refused, with an error, not half done.
    expect(() => Object.freeze(log)).toThrow(TypeError)
  })
})
