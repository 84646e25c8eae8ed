import type { CallOptions } from '../service/router-client.js'

export type CallProcedure = (
  path: string,
  input: unknown,
  options: CallOptions | undefined,
) => Promise<unknown>

/**
 * An object on which any property chain is a procedure path and calling it calls `call`:
 * `proxy.admin.flush(input)` → `call('admin.flush', input)`. `then` is not a path, so a proxy is
 * never mistaken for a promise.
 */
export function routerProxy(call: CallProcedure, path: readonly string[] = []): unknown {
  return new Proxy(() => undefined, {
    get(_target, property) {
      if (typeof property !== 'string' || property === 'then') return undefined
      return routerProxy(call, [...path, property])
    },
    apply(_target, _this, args: unknown[]) {
      if (path.length === 0) {
        return Promise.reject(new TypeError('call a procedure, e.g. ctx.deps.cache.get(input)'))
      }
      return call(path.join('.'), args[0], args[1] as CallOptions | undefined)
    },
  })
}
