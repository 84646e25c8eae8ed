import { ServiceDefinitionError } from './service-definition-error.js'

/** The balancers chosen by name in `deps` (`hash` takes a function, see `HashBalancer`). */
export const BALANCER_NAMES = ['p2c', 'round-robin', 'random', 'least-load'] as const

/** How instances of a dependency are picked for each call, by name. */
export type BalancerName = (typeof BALANCER_NAMES)[number]

/** One call as a `hash` function sees it: the procedure path and its input. */
export interface BalancedCall<TPath extends string = string, TInput = unknown> {
  path: TPath
  input: TInput
}

/**
 * Every procedure of a dependency's typed client (`RouterClient`) as a `{ path, input }` pair, a
 * union discriminated by `path` (nested routers give dotted paths: `admin.flush`).
 */
export type CallsOf<TClient, TPrefix extends string = ''> = {
  [K in keyof TClient & string]: TClient[K] extends (
    input: infer TInput,
    ...rest: never[]
  ) => unknown
    ? BalancedCall<`${TPrefix}${K}`, TInput>
    : CallsOf<TClient[K], `${TPrefix}${K}.`>
}[keyof TClient & string]

/**
 * Rendezvous hashing on a key taken from each call: calls with the same key go to the same
 * instance while it lives, and only ~1/N of the keys move when one of N instances comes or goes.
 * `undefined` means "no key": that call is balanced by `p2c`.
 */
export interface HashBalancer<TCall extends BalancedCall = BalancedCall> {
  // A method, so a typed hash function fits where any call may come (parameters are bivariant).
  hash(call: TCall): string | undefined
}

/** A balancer in `deps`: a name, or `{ hash: ({ path, input }) => key }`. */
export type BalancerSpec<TCall extends BalancedCall = BalancedCall> =
  | BalancerName
  | HashBalancer<TCall>

const ACCEPTED =
  `one of ${BALANCER_NAMES.map((name) => `'${name}'`).join(', ')}, ` +
  `or { hash: ({ path, input }) => key } (a function returning a string, or undefined for p2c)`

/**
 * Throws a `ServiceDefinitionError` (FRAMEWORK_ERR_BAD_BALANCER) naming `where` and the accepted
 * forms when `spec` is not a balancer: at load, not at the first call.
 */
export function assertBalancerSpec(spec: unknown, where: string): void {
  const problem = balancerSpecProblem(spec)
  if (problem)
    throw new ServiceDefinitionError(`${where}: ${problem}`, 'FRAMEWORK_ERR_BAD_BALANCER')
}

/** Why `spec` is not a balancer, or undefined when it is one. */
function balancerSpecProblem(spec: unknown): string | undefined {
  if (spec === undefined) return undefined
  if (typeof spec === 'string') {
    return (BALANCER_NAMES as readonly string[]).includes(spec)
      ? undefined
      : `unknown balancer ${JSON.stringify(spec)}: use ${ACCEPTED}`
  }
  if (typeof spec === 'object' && spec !== null && !Array.isArray(spec)) {
    const keys = Object.keys(spec)
    const hash = (spec as { hash?: unknown }).hash
    if (keys.length === 1 && keys[0] === 'hash' && typeof hash === 'function') return undefined
    return `invalid balancer ${describe(spec)}: use ${ACCEPTED}`
  }
  return `invalid balancer ${describe(spec)}: use ${ACCEPTED}`
}

function describe(value: unknown): string {
  if (typeof value === 'function') return 'a function'
  if (typeof value !== 'object' || value === null) return JSON.stringify(value) ?? String(value)
  const fields = Object.entries(value).map(
    ([key, field]) => `${key}: ${typeof field === 'function' ? 'function' : typeof field}`,
  )
  return `{ ${fields.join(', ')} }`
}
