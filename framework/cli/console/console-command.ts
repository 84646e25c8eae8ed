import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import repl from 'node:repl'
import { formatTable } from '../output.js'
import type { PhoneBookTarget } from '../phone-book-target.js'
import { formatAge, readPhoneBook } from '../ps.js'
import { loadAppProcedures } from './app-procedures.js'
import { ConsoleClients } from './console-clients.js'
import { roleObjects } from './role-objects.js'

/** Where the console keeps its history, under the app root. */
export const HISTORY_FILE = join('.framework', 'console_history')

export interface ConsoleOptions {
  target: PhoneBookTarget
  /** The app root: its services' code checks input; its .framework/ keeps the history. */
  appRoot: string
  input: NodeJS.ReadableStream
  output: NodeJS.WriteStream
}

/** How often the role globals are refreshed from the phone book. */
const REFRESH_MS = 3_000

/** `order-api` → `orderApi`: the global a role is reached by. */
const globalName = (role: string) =>
  role.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase())

/**
 * `framework console`: a REPL on the live system. Every role is a global whose procedures call
 * through discovery (`await cache.get({ key: 'a' })`); `.ps`, `.routes` and `.watch <role>` read
 * the phone book. Resolves with the number of watches it closed once the user leaves (Ctrl-D or
 * .exit): nothing stays open after it.
 */
export async function runConsole(options: ConsoleOptions): Promise<number> {
  const { target, appRoot, output } = options
  const print = (line: string) => output.write(`${line}\n`)
  const code = await loadAppProcedures(appRoot, print)
  const clients = new ConsoleClients(target)
  const live = await clients.liveRoles().catch((err: unknown) => {
    print(`cannot read the phone book yet (${(err as Error).message.split('\n')[0]})`)
    return []
  })
  print(
    `framework console: namespace '${target.namespace}', etcd ${target.etcdEndpoints.join(',')}; ` +
      `${live.length} live role(s)${code.size ? `, input checked from services/ (${code.size})` : ''}. ` +
      'Try: await <role>.<procedure>(input)  .ps  .routes  .watch <role>  .help',
  )

  const server = repl.start({
    prompt: 'framework> ',
    input: options.input,
    output,
    useGlobal: false,
    terminal: output.isTTY === true,
  })
  const refresh = async () => {
    const roles = roleObjects(await clients.liveRoles(), code, clients, print)
    for (const [role, object] of roles) server.context[globalName(role)] = object
    return roles
  }
  await refresh().catch(() => undefined)
  // Roles that register later become globals too (a range read every few seconds; no watch).
  const refresher = setInterval(() => void refresh().catch(() => undefined), REFRESH_MS)
  refresher.unref()

  // A command's work is async: the prompt comes back when it is done.
  const command = (help: string, action: (arg: string) => Promise<void>) => ({
    help,
    action(arg: string) {
      server.clearBufferedCommand()
      action(arg.trim())
        .catch((err: unknown) => print(`error: ${(err as Error).message.split('\n')[0]}`))
        .finally(() => server.displayPrompt())
    },
  })
  server.defineCommand(
    'ps',
    command('The live phone book: every registered instance', async () => {
      const book = await readPhoneBook(target)
      await refresh()
      if (book.instances.length === 0) {
        print(`no instances registered in namespace '${target.namespace}'`)
        return
      }
      print(
        formatTable(
          ['role', 'instance', 'url', 'age', 'inflight', 'record'],
          book.instances.map((row) => [
            row.role,
            row.id,
            row.url,
            formatAge(row.ageSeconds),
            String(row.inflight),
            row.stale ? 'stale' : 'fresh',
          ]),
        ),
      )
    }),
  )
  server.defineCommand(
    'routes',
    command('Every role and procedure: kind, live instances, input checked here', async () => {
      const live = await clients.liveRoles()
      await refresh()
      const roles = [...new Set([...live.map((entry) => entry.role), ...code.keys()])].sort()
      const rows = roles.flatMap((role) => {
        const entry = live.find((candidate) => candidate.role === role)
        const paths = new Set([
          ...Object.keys(entry?.procedures ?? {}),
          ...(code.get(role)?.keys() ?? []),
        ])
        return [...paths]
          .sort()
          .map((path) => [
            role,
            path,
            entry?.procedures[path] ?? code.get(role)?.get(path)?.kind ?? '?',
            String(entry?.instances ?? 0),
            code.get(role)?.has(path) ? 'yes' : '-',
          ])
      })
      print(formatTable(['role', 'procedure', 'kind', 'instances', 'checked'], rows))
    }),
  )
  const watching = new Map<string, () => void>()
  server.defineCommand(
    'watch',
    command('.watch <role>: show its instances coming and going (again: stop)', async (role) => {
      if (!role) {
        print(`watching: ${[...watching.keys()].join(', ') || 'nothing'}; .watch <role> toggles`)
        return
      }
      const stop = watching.get(role)
      if (stop) {
        stop()
        watching.delete(role)
        print(`stopped watching ${role}`)
        return
      }
      const resolver = clients.resolver(role)
      await resolver.whenListed(5_000)
      // Load figures refresh records every few seconds, and a leaving instance's key can be
      // reported gone more than once (lease revoked, key deleted): only changes of this set show.
      const shown = new Set(resolver.endpoints.map((endpoint) => endpoint.id))
      watching.set(
        role,
        resolver.subscribe((update) => {
          if (update.op === 'update') return
          const { id } = update.endpoint
          if ((update.op === 'add') === shown.has(id)) return
          if (update.op === 'add') shown.add(id)
          else shown.delete(id)
          const sign = update.op === 'add' ? '+' : '-'
          print(
            `\n${sign} ${role} ${update.endpoint.id} ${update.endpoint.url} (${resolver.endpoints.length} live)`,
          )
          server.displayPrompt(true)
        }),
      )
      print(
        `watching ${role}: ${resolver.endpoints.length} live${resolver.endpoints.map((e) => `\n  ${e.id} ${e.url}`).join('')}`,
      )
    }),
  )

  const history = join(appRoot, HISTORY_FILE)
  mkdirSync(join(appRoot, '.framework'), { recursive: true })
  await new Promise<void>((resolve) => {
    server.setupHistory(history, (err) => {
      if (err) print(`no history (${err.message})`)
      resolve()
    })
  })

  await new Promise<void>((resolve) => server.once('exit', resolve))
  clearInterval(refresher)
  for (const stop of watching.values()) stop()
  const closed = await clients.close()
  print(`bye: ${closed} watch(es) closed`)
  return closed
}
