import type { AnyRouter, inferRouterContext } from '@trpc/server'
import { pino } from 'pino'
import type { ServiceContext } from './context.js'
import type { ServiceDefinition } from './define-service.js'

type DepsOf<TRouter extends AnyRouter> =
  inferRouterContext<TRouter> extends ServiceContext<infer TDeps> ? TDeps : {}

/**
 * Calls a service's procedures in-process, for unit tests: no server, no etcd. Dependencies are
 * whatever the test passes (`deps: { cache: { get: async () => ({ ... }) } }`).
 */
export function createTestCaller<TRouter extends AnyRouter>(
  definition: ServiceDefinition<string, TRouter>,
  options: { deps?: Partial<DepsOf<TRouter>> } = {},
): ReturnType<TRouter['createCaller']> {
  const ctx: ServiceContext<unknown> = {
    instance: { id: `${definition.role}-test`, role: definition.role, url: 'http://127.0.0.1:0' },
    log: pino({ level: 'silent' }),
    deps: options.deps ?? {},
  }
  return definition.router.createCaller(ctx) as ReturnType<TRouter['createCaller']>
}
