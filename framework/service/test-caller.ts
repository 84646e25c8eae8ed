import type { AnyRouter, inferRouterContext } from '@trpc/server'
import { pino } from 'pino'
import { NO_METADATA } from '../protocol/metadata.js'
import type { Caller, ServiceContext } from './context.js'
import type { ServiceDefinition } from './define-service.js'

type DepsOf<TRouter extends AnyRouter> =
  inferRouterContext<TRouter> extends ServiceContext<infer TDeps> ? TDeps : {}

/**
 * Calls a service's procedures in-process, for unit tests: no server, no etcd. Dependencies are
 * whatever the test passes (`deps: { cache: { get: async () => ({ ... }) } }`), and so are
 * `ctx.caller` and `ctx.requestId` (`caller: { id: 'u1' }`).
 */
export function createTestCaller<TRouter extends AnyRouter>(
  definition: ServiceDefinition<string, TRouter>,
  options: { deps?: Partial<DepsOf<TRouter>>; caller?: Caller; requestId?: string } = {},
): ReturnType<TRouter['createCaller']> {
  const ctx: ServiceContext<unknown> = {
    instance: { id: `${definition.role}-test`, role: definition.role, url: 'http://127.0.0.1:0' },
    log: pino({ level: 'silent' }),
    deps: options.deps ?? {},
    requestId: options.requestId,
    caller: options.caller,
    metadata: NO_METADATA,
  }
  return definition.router.createCaller(ctx) as ReturnType<TRouter['createCaller']>
}
