import { inputIssues } from '../../gateway/input-check.js'
import { describeInputIssues } from '../../service/errors.js'
import type { AppProcedures } from './app-procedures.js'
import type { ConsoleClients, LiveRole } from './console-clients.js'

/**
 * An error the console shows as its one line (`SERVICE_UNAVAILABLE: no live instance of role
 * 'x' …`): the REPL prints `stack`, so it is set to that line and nothing more.
 */
export class ConsoleCallError extends Error {
  declare readonly code: string

  constructor(code: string, message: string) {
    super(message)
    this.name = code
    this.stack = `${code}: ${message}`
    // Not enumerable: the REPL would print it as `{ code }` after the line.
    Object.defineProperty(this, 'code', { value: code, enumerable: false })
  }
}

/** `fn` shown by the REPL as `[AsyncFunction: cache.get]`. */
function named<T extends (...args: never[]) => unknown>(name: string, fn: T): T {
  return Object.defineProperty(fn, 'name', { value: name })
}

/** `{ get: fn, admin: { flush: fn } }` from dotted paths: what Tab completes after `cache.`. */
function nest(paths: string[], leaf: (path: string) => unknown): Record<string, unknown> {
  const root: Record<string, unknown> = {}
  for (const path of paths.sort()) {
    const parts = path.split('.')
    let node = root
    for (const part of parts.slice(0, -1)) {
      const next = node[part]
      if (typeof next === 'object' && next !== null) node = next as Record<string, unknown>
      else node = node[part] = {}
    }
    node[parts.at(-1) as string] = leaf(path)
  }
  return root
}

/**
 * A global object per role (from the live records and the app's code): each procedure is an
 * async function that checks its input against the service's schema (when the code is loaded),
 * calls it through discovery, prints the instance that served it and the time, and resolves to
 * the result.
 */
export function roleObjects(
  live: readonly LiveRole[],
  code: AppProcedures,
  clients: ConsoleClients,
  print: (line: string) => void,
): Map<string, Record<string, unknown>> {
  const roles = new Set([...live.map((entry) => entry.role), ...code.keys()])
  const objects = new Map<string, Record<string, unknown>>()
  for (const role of roles) {
    const schemas = code.get(role)
    const paths = new Set([
      ...Object.keys(live.find((entry) => entry.role === role)?.procedures ?? {}),
      ...(schemas?.keys() ?? []),
    ])
    objects.set(
      role,
      nest([...paths], (path) =>
        named(`${role}.${path}`, async (input?: unknown) => {
          const issues = await inputIssues(schemas?.get(path)?.parsers ?? [], input)
          if (issues) {
            throw new ConsoleCallError(
              'BAD_REQUEST',
              `${role}.${path} not called: ${describeInputIssues(issues)}`,
            )
          }
          let served: Awaited<ReturnType<ConsoleClients['call']>>
          try {
            served = await clients.call(role, path, input)
          } catch (err) {
            const code = (err as { code?: unknown }).code
            throw new ConsoleCallError(
              typeof code === 'string' ? code : 'ERROR',
              (err as Error).message.split('\n')[0] ?? String(err),
            )
          }
          const by = served.instance
            ? `${served.instance.id} (${served.instance.url})`
            : 'an unknown instance'
          print(`${role}.${path} served by ${by} in ${served.ms.toFixed(1)} ms`)
          return served.result
        }),
      ),
    )
  }
  return objects
}
