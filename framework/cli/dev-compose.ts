import { spawn, spawnSync } from 'node:child_process'
import { type FSWatcher, watch } from 'node:fs'
import { join } from 'node:path'
import { CliError } from './cli-error.js'
import { type ComposeOptions, writeCompose } from './compose.js'

export interface DevComposeOptions extends ComposeOptions {
  compose: string[]
  detach: boolean
  watchFiles: boolean
  log: (line: string) => void
}

function run(command: string[], args: string[], cwd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0]!, [...command.slice(1), ...args], { cwd, stdio: 'inherit' })
    child.once('error', reject)
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)))
  })
}

/**
 * `framework dev` with a Docker engine: writes docker-compose.yml, then `up --build` with each
 * role scaled (compose v1 ignores deploy.replicas). In the foreground, a change under
 * services/<role> rebuilds and restarts that role; Ctrl-C stops the containers (SIGTERM to each
 * instance: leases revoked).
 */
export async function devCompose(options: DevComposeOptions): Promise<number> {
  const { appRoot, compose, log } = options
  const plan = await writeCompose(options, log)
  const scale = Object.entries(plan.replicas).flatMap(([role, n]) => ['--scale', `${role}=${n}`])
  if (options.detach) {
    log(`${compose.join(' ')} up --detach --build …`)
    const code = await run(compose, ['up', '--detach', '--build', ...scale], appRoot)
    if (code !== 0)
      throw new CliError(`${compose.join(' ')} up failed (exit ${code}); see its output above`)
    log('started in the background; framework ps shows the instances, framework down stops them')
    return 0
  }
  const watchers: FSWatcher[] = []
  if (options.watchFiles) {
    for (const role of Object.keys(plan.replicas)) {
      let timer: NodeJS.Timeout | undefined
      watchers.push(
        watch(join(appRoot, 'services', role), { recursive: true }, () => {
          clearTimeout(timer)
          timer = setTimeout(() => {
            log(`files of ${role} changed: rebuilding and restarting it`)
            spawnSync(
              compose[0]!,
              [
                ...compose.slice(1),
                'up',
                '--detach',
                '--build',
                '--no-deps',
                '--scale',
                `${role}=${plan.replicas[role]}`,
                role,
              ],
              { cwd: appRoot, stdio: 'inherit' },
            )
          }, 500)
        }),
      )
    }
  }
  log(`${compose.join(' ')} up --build … (Ctrl-C stops everything)`)
  const child = spawn(compose[0]!, [...compose.slice(1), 'up', '--build', ...scale], {
    cwd: appRoot,
    stdio: 'inherit',
  })
  // A terminal's Ctrl-C reaches compose itself; a SIGTERM to us is passed on as Ctrl-C.
  const forward = () => child.kill('SIGINT')
  process.on('SIGTERM', forward)
  process.on('SIGINT', () => undefined)
  const code = await new Promise<number>((resolve) => child.once('exit', (c) => resolve(c ?? 0)))
  for (const watcher of watchers) watcher.close()
  process.off('SIGTERM', forward)
  return code
}

/** `framework down`: stop and remove the app's containers (and their etcd). */
export async function composeDown(appRoot: string, compose: string[]): Promise<number> {
  return run(compose, ['down', '--remove-orphans', '--timeout', '20'], appRoot)
}
