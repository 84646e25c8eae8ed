import { TRPCError } from '@trpc/server'
import { pino } from 'pino'
import { DependencyClient } from '../client/dependency-client.js'
import { HttpTransport } from '../client/http-transport.js'
import { RetryBudget } from '../client/retry-budget.js'
import { resolveCallAuth } from '../config/call-auth.js'
import { createBalancer } from '../discovery/balancers/index.js'
import { callTokensFor } from '../security/call-tokens.js'
import { ROLE_PATTERN } from '../service/role.js'
import { CliError } from './cli-error.js'
import { ListedResolver } from './listed-resolver.js'
import { etcdUnreachable, type PhoneBookTarget } from './phone-book-target.js'

/** Splits `cache.admin.flush` into role `cache` and path `admin.flush`. */
export function parseCallTarget(target: string): { role: string; path: string } {
  const dot = target.indexOf('.')
  const role = dot > 0 ? target.slice(0, dot) : ''
  const path = dot > 0 ? target.slice(dot + 1) : ''
  if (!ROLE_PATTERN.test(role) || !/^[A-Za-z0-9_$]+(\.[A-Za-z0-9_$]+)*$/.test(path)) {
    throw new CliError(
      `'${target}' is not <role>.<procedure>: e.g. framework call cache.get '{"key":"a"}'`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  return { role, path }
}

export function parseCallInput(json: string | undefined): unknown {
  if (json === undefined) return undefined
  try {
    return JSON.parse(json)
  } catch (err) {
    throw new CliError(
      `input is not valid JSON (${(err as Error).message}); quote it for the shell: framework call cache.get '{"key":"a"}'`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
}

/**
 * Calls one procedure through discovery with the client `ctx.deps` uses (balancer, retries on
 * another instance, ejection, deadline, the RPC stream), over the role's instances as listed once
 * through etcd's JSON gateway: a one-shot has no use for a watch.
 */
export async function callThroughDiscovery(
  target: PhoneBookTarget,
  role: string,
  path: string,
  input: unknown,
  timeoutMs: number,
): Promise<unknown> {
  const resolver = new ListedResolver(
    role,
    target.namespace,
    target.etcdEndpoints,
    Date.now() + timeoutMs,
    target.etcdAccess,
  )
  const transport = new HttpTransport()
  const client = new DependencyClient({
    role,
    namespace: target.namespace,
    etcdEndpoints: target.etcdEndpoints,
    resolver,
    transport,
    balancer: createBalancer(),
    budget: new RetryBudget(),
    timeoutMs,
    log: pino({ level: 'silent' }),
    // Tokens name `cli` as the caller, signed with the namespace secret of this environment.
    tokens: callTokensFor(resolveCallAuth(process.env), 'cli', target.namespace),
  })
  try {
    return await client.call(path, input)
  } catch (err) {
    // The listing failed because etcd turned us away (TLS, user): say so, not "no instance".
    if (resolver.lastError !== undefined) {
      const refused = etcdUnreachable(target, new Error(resolver.lastError), `read ${role}`)
      if (refused.code === 'FRAMEWORK_ERR_ETCD_REFUSED') throw refused
    }
    if (err instanceof TRPCError)
      throw new CliError(`${err.code}: ${err.message}`, 'FRAMEWORK_ERR_COMMAND_FAILED', {
        cause: err,
      })
    throw err
  } finally {
    await resolver.close()
    await transport.close()
  }
}
