import { describe, expect, it, vi } from 'vitest'
import { type CallProcedure, routerProxy } from '../../framework/client/router-proxy.js'

type AnyProxy = Record<string, never> & ((...args: unknown[]) => Promise<unknown>)
// biome-ignore lint/suspicious/noExplicitAny: the proxy answers any property chain
type Chain = any

function setup() {
  const call = vi.fn<CallProcedure>(async (path, input) => ({ path, input }))
  const proxy = routerProxy(call) as Chain
  return { call, proxy }
}

describe('routerProxy', () => {
  it('calls a top-level procedure by name', async () => {
    const { call, proxy } = setup()
    await expect(proxy.get({ key: 'a' })).resolves.toEqual({ path: 'get', input: { key: 'a' } })
    expect(call).toHaveBeenCalledTimes(1)
    expect(call).toHaveBeenCalledWith('get', { key: 'a' }, undefined)
  })

  it("joins nested paths with '.'", async () => {
    const { call, proxy } = setup()
    await proxy.admin.flush()
    await proxy.a.b.c.d(1)
    expect(call.mock.calls.map(([path]) => path)).toEqual(['admin.flush', 'a.b.c.d'])
  })

  it('passes input and call options through unchanged', async () => {
    const { call, proxy } = setup()
    const input = { key: 'k', nested: [1, 2] }
    const options = { timeoutMs: 250, signal: new AbortController().signal }
    await proxy.cache.get(input, options)
    const [path, passedInput, passedOptions] = call.mock.calls[0]!
    expect(path).toBe('cache.get')
    expect(passedInput).toBe(input)
    expect(passedOptions).toBe(options)
  })

  it('returns what call returns (including rejections)', async () => {
    const failure = new Error('boom')
    const call = vi.fn<CallProcedure>(() => Promise.reject(failure))
    const proxy = routerProxy(call) as Chain
    await expect(proxy.get()).rejects.toBe(failure)
  })

  it('does not call anything until a procedure is invoked', () => {
    const { call, proxy } = setup()
    void proxy.a.b.c
    expect(call).not.toHaveBeenCalled()
  })

  it('has no then, so awaiting a proxy calls nothing', async () => {
    const { call, proxy } = setup()
    expect(proxy.then).toBeUndefined()
    expect(proxy.admin.then).toBeUndefined()
    const awaited = await proxy
    const awaitedNested = await proxy.admin
    expect(typeof awaited).toBe('function')
    expect(typeof awaitedNested).toBe('function')
    expect(call).not.toHaveBeenCalled()
  })

  it('answers symbol properties with undefined', () => {
    const { proxy } = setup()
    expect(proxy[Symbol.toPrimitive]).toBeUndefined()
    expect(proxy[Symbol.iterator]).toBeUndefined()
  })

  it('rejects with a TypeError when the root itself is called', async () => {
    const { call } = setup()
    const root = routerProxy(call) as AnyProxy
    const result = root({ key: 'a' })
    expect(result).toBeInstanceOf(Promise)
    await expect(result).rejects.toBeInstanceOf(TypeError)
    await expect(root()).rejects.toThrow(/call a procedure/)
    expect(call).not.toHaveBeenCalled()
  })

  it('gives independent proxies for separate chains', async () => {
    const { call, proxy } = setup()
    const admin = proxy.admin
    await admin.flush()
    await admin.stats()
    await proxy.get()
    expect(call.mock.calls.map(([path]) => path)).toEqual(['admin.flush', 'admin.stats', 'get'])
  })

  it('hands out the same proxy for the same chain (no allocation per call), each calling its own path', async () => {
    const { call, proxy } = setup()
    expect(proxy.cache.get).toBe(proxy.cache.get)
    expect(proxy.cache).not.toBe(proxy.admin)
    expect(proxy.cache.get).not.toBe(proxy.cache.set)
    await proxy.cache.get(1)
    await proxy.cache.get(2)
    await proxy.cache.set(3)
    expect(call.mock.calls.map(([path, input]) => [path, input])).toEqual([
      ['cache.get', 1],
      ['cache.get', 2],
      ['cache.set', 3],
    ])
  })
})
