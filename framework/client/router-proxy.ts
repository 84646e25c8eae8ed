import type { CallOptions } from '../service/router-client.js'

export type CallProcedure = (
  path: string,
  input: unknown,
  options: CallOptions | undefined,
) => Promise<unknown>

/**
 * An object on which any property chain is a procedure path and calling it calls `call`:
 * `proxy.admin.flush(input)` → `call('admin.flush', input)`. `then` is not a path, so a proxy is
 * never mistaken for a promise. Each node keeps the children it has handed out, so
 * `ctx.deps.cache.get(…)` in a loop allocates no proxy per call (the set of paths is the code's).
 */
export function routerProxy(call: CallProcedure, path: readonly string[] = []): unknown {
  // Made when first needed: a request's own `ctx.deps` tree is often touched once.
  let children: Map<string, unknown> | undefined
  let joined: string | undefined
  return new Proxy(() => undefined, {
    get(_target, property) {
      if (typeof property !== 'string' || property === 'then') return undefined
      children ??= new Map()
      let child = children.get(property)
      if (child === undefined) {
        child = routerProxy(call, [...path, property])
        children.set(property, child)
      }
      return child
    },
    apply(_target, _this, args: unknown[]) {
      if (path.length === 0) {
        return Promise.reject(new TypeError('call a procedure, e.g. ctx.deps.cache.get(input)'))
      }
      joined ??= path.join('.')
      return call(joined, args[0], args[1] as CallOptions | undefined)
    },
  })
}
