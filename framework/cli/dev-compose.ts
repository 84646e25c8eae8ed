import { spawn, spawnSync } from 'node:child_process'
import { existsSync, type FSWatcher, watch } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { GATEWAY_MODULE } from '../gateway/config.js'
import { readManifest } from './build/manifest.js'
import { CliError } from './cli-error.js'
import { type ComposeOptions, type ComposePlan, writeCompose } from './compose.js'
import { writeTelemetryOverride } from './dev/dashboard/compose-telemetry.js'
import { type DevDashboard, startDevDashboard } from './dev/dashboard/dev-dashboard.js'
import { type ContainerState, inspectContainers } from './docker.js'
import { GATEWAY_NAME } from './gateway-plan.js'
import { formatTable } from './output.js'
import { runWithProgress } from './progress.js'
import { readPhoneBook } from './ps.js'

/** How long `dev --detach` waits for every container to be healthy once compose has started them. */
const HEALTHY_TIMEOUT_MS = 180_000
const HEALTH_POLL_MS = 1_000

export interface DevComposeOptions extends ComposeOptions {
  compose: string[]
  detach: boolean
  watchFiles: boolean
  log: (line: string) => void
  /** Where long steps show progress (a terminal: a spinner with the current build step). */
  progressOut?: NodeJS.WriteStream
}

function run(command: string[], args: string[], cwd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0]!, [...command.slice(1), ...args], { cwd, stdio: 'inherit' })
    child.once('error', reject)
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)))
  })
}

/**
 * `framework dev` with a Docker engine: writes docker-compose.yml (with the gateway when some
 * role exposes procedures), then `up --build` with each role scaled (compose v1 ignores
 * deploy.replicas). `--detach` returns once every container is healthy and prints the phone book
 * and the gateway's address (for scripts: the app answers when it returns). In the foreground, a
 * change under services/<role> rebuilds and restarts that role (and the gateway when the role
 * exposes procedures; gateway.ts rebuilds the gateway); Ctrl-C stops the containers (SIGTERM to
 * each instance: leases revoked). In the foreground the dashboard runs in this process, reading
 * the phone book through etcd's host port; on the host network the services export their traces
 * to its collector (see compose-telemetry.ts for what a bridge would need).
 */
export async function devCompose(options: DevComposeOptions): Promise<number> {
  const { appRoot, log } = options
  const plan = await writeCompose(options, log)
  let compose = options.compose
  let dev: DevDashboard | undefined
  if (!options.detach) {
    dev = await startDevDashboard({
      etcdEndpoints: [`http://127.0.0.1:${options.etcdPort}`],
      namespace: plan.namespace,
      roles: readManifest(appRoot)?.roles ?? [],
      env: process.env,
      say: log,
    })
    if (dev && options.network === 'host') {
      const services = [...Object.keys(plan.replicas), ...(plan.gateway ? [GATEWAY_NAME] : [])]
      compose = writeTelemetryOverride(appRoot, compose, services, dev.env)
    } else if (dev) {
      log('traces need --network host in compose: the dashboard shows topology and calls only')
    }
    if (dev) log(`dashboard at ${dev.dashboard.url} (once the containers are up)`)
  }
  try {
    return await composeUp(options, plan, compose, dev)
  } finally {
    await dev?.close()
  }
}

async function composeUp(
  options: DevComposeOptions,
  plan: ComposePlan,
  compose: string[],
  dev: DevDashboard | undefined,
): Promise<number> {
  const { appRoot, log } = options
  const scale = Object.entries(plan.replicas).flatMap(([role, n]) => ['--scale', `${role}=${n}`])
  const built = await runWithProgress(
    compose[0]!,
    [...compose.slice(1), 'build'],
    appRoot,
    `${compose.join(' ')} build`,
    options.progressOut ?? process.stdout,
  )
  if (!built) throw new CliError(`${compose.join(' ')} build failed; see its output above`)
  log(`images (node, production dependencies, bundles): ${imageSizes(plan.images)}`)
  if (options.detach) {
    log(`${compose.join(' ')} up --detach …`)
    const code = await run(compose, ['up', '--detach', ...scale], appRoot)
    if (code !== 0)
      throw new CliError(`${compose.join(' ')} up failed (exit ${code}); see its output above`)
    log('waiting for every container to be healthy (etcd answers, each instance registered)…')
    const containers = await waitHealthy(appRoot, compose, HEALTHY_TIMEOUT_MS, log)
    await logReady(options, plan, containers.length, log)
    return 0
  }
  const watchers: FSWatcher[] = []
  if (options.watchFiles) {
    const gateway = plan.gateway
    // Rebuilds and restarts roles; the gateway runs an exposing role's image (`imageRole`), which
    // holds every bundle: a change the gateway loads rebuilds that image and recreates both.
    const rebuild = (why: string, changed: string[], withGateway: boolean) => {
      const roles =
        withGateway && gateway && !changed.includes(gateway.imageRole)
          ? [...changed, gateway.imageRole]
          : changed
      const services = withGateway ? [...roles, GATEWAY_NAME] : roles
      log(`${why}: rebuilding and restarting ${services.join(', ')}`)
      spawnSync(
        compose[0]!,
        [
          ...compose.slice(1),
          'up',
          '--detach',
          '--build',
          '--no-deps',
          ...roles.flatMap((role) => ['--scale', `${role}=${plan.replicas[role]}`]),
          ...services,
        ],
        { cwd: appRoot, stdio: 'inherit' },
      )
    }
    const watchPath = (path: string, recursive: boolean, onChange: () => void) => {
      let timer: NodeJS.Timeout | undefined
      watchers.push(
        watch(path, { recursive }, () => {
          clearTimeout(timer)
          timer = setTimeout(onChange, 500)
        }),
      )
    }
    for (const role of Object.keys(plan.replicas)) {
      watchPath(join(appRoot, 'services', role), true, () =>
        rebuild(`files of ${role} changed`, [role], gateway?.exposing.includes(role) === true),
      )
    }
    const settings = join(appRoot, GATEWAY_MODULE)
    if (gateway && existsSync(settings)) {
      watchPath(settings, false, () => rebuild(`${GATEWAY_MODULE} changed`, [], true))
    }
  }
  log(`${compose.join(' ')} up … (Ctrl-C stops everything)`)
  // The readiness table and the dashboard's address once everything is healthy (compose's own
  // output goes on around it); a container that fails is compose's output to tell.
  void announceWhenHealthy(options, plan, compose, dev).catch(() => undefined)
  // compose gets its own process group: a terminal's Ctrl-C reaches only us and is passed on
  // once (a second SIGINT makes compose kill the containers instead of stopping them).
  const child = spawn(compose[0]!, [...compose.slice(1), 'up', ...scale], {
    cwd: appRoot,
    stdio: 'inherit',
    detached: true,
  })
  let forwarded = false
  const forward = () => {
    if (forwarded) return
    forwarded = true
    child.kill('SIGINT')
  }
  process.on('SIGINT', forward)
  process.on('SIGTERM', forward)
  const code = await new Promise<number>((resolve) => child.once('exit', (c) => resolve(c ?? 0)))
  for (const watcher of watchers) watcher.close()
  process.off('SIGINT', forward)
  process.off('SIGTERM', forward)
  return code
}

/** Once compose created every container (etcd, the instances, the gateway) and all are healthy. */
async function announceWhenHealthy(
  options: DevComposeOptions,
  plan: ComposePlan,
  compose: string[],
  dev: DevDashboard | undefined,
): Promise<void> {
  const expected =
    1 + Object.values(plan.replicas).reduce((sum, n) => sum + n, 0) + (plan.gateway ? 1 : 0)
  const deadline = Date.now() + HEALTHY_TIMEOUT_MS
  while (Date.now() < deadline) {
    await sleep(HEALTH_POLL_MS)
    const ids = (() => {
      try {
        return composeContainerIds(options.appRoot, compose, process.env)
      } catch {
        return []
      }
    })()
    if (ids.length >= expected) break
  }
  const containers = await waitHealthy(options.appRoot, compose, HEALTHY_TIMEOUT_MS)
  await logReady(options, plan, containers.length, options.log, dev)
}

/** `framework-api:dev 187 MB, …`: each role's image and its size as the engine reports it. */
function imageSizes(images: Record<string, string>): string {
  return Object.values(images)
    .map((image) => {
      const inspect = spawnSync('docker', ['image', 'inspect', '--format', '{{.Size}}', image], {
        encoding: 'utf8',
        timeout: 30_000,
      })
      const bytes = Number(inspect.stdout.trim())
      return `${image} ${inspect.status === 0 && bytes > 0 ? `${Math.round(bytes / 1e6)} MB` : '(size unknown)'}`
    })
    .join(', ')
}

/** Ids of the app's containers, running or not (`compose ps --all`; the project as `env` names it). */
function composeContainerIds(appRoot: string, compose: string[], env: NodeJS.ProcessEnv): string[] {
  const ps = spawnSync(compose[0]!, [...compose.slice(1), 'ps', '--all', '--quiet'], {
    cwd: appRoot,
    env,
    encoding: 'utf8',
    timeout: 60_000,
  })
  if (ps.status !== 0) {
    throw new CliError(
      `${compose.join(' ')} ps failed (${ps.error?.message ?? `exit ${ps.status}`}): ${ps.stderr.trim().split('\n').pop() ?? ''}`,
    )
  }
  return ps.stdout.split('\n').filter(Boolean)
}

/** The app's containers, running or not. */
export function composeContainers(
  appRoot: string,
  compose: string[],
  env: NodeJS.ProcessEnv = process.env,
): ContainerState[] {
  return inspectContainers(composeContainerIds(appRoot, compose, env))
}

/**
 * Resolves once every container of the app is healthy (etcd's healthcheck is `endpoint health`,
 * a service's is its /readyz: registered in the phone book). Fails at once if one exited or was
 * restarted, and after `timeoutMs` naming the containers that are not healthy yet.
 */
export async function waitHealthy(
  appRoot: string,
  compose: string[],
  timeoutMs: number,
  /** Told "3/5 healthy" each time the count changes. */
  progress: (line: string) => void = () => undefined,
): Promise<ContainerState[]> {
  const deadline = Date.now() + timeoutMs
  let reported = -1
  // `up --detach` has created every container: list them once, then ask the engine only.
  const ids = composeContainerIds(appRoot, compose, process.env)
  if (ids.length === 0) throw new CliError(`${compose.join(' ')} up started no container`)
  for (;;) {
    const containers = inspectContainers(ids)
    if (containers.length < ids.length) {
      throw new CliError('a container was removed while starting; see: docker ps --all')
    }
    const failed = containers.find(
      ({ status, restartCount }) => status === 'exited' || status === 'dead' || restartCount > 0,
    )
    if (failed) {
      throw new CliError(
        `${failed.name} exited (code ${failed.exitCode}, restarted ${failed.restartCount}×) before it was healthy; see: docker logs ${failed.name}, framework down stops the rest`,
      )
    }
    const waiting = containers.filter(({ health }) => health !== undefined && health !== 'healthy')
    if (waiting.length !== reported) {
      reported = waiting.length
      progress(`${containers.length - waiting.length}/${containers.length} healthy`)
    }
    if (waiting.length === 0) return containers
    if (Date.now() > deadline) {
      const names = waiting.map(({ name, health }) => `${name} (${health})`).join(', ')
      throw new CliError(
        `not healthy within ${Math.round(timeoutMs / 1000)} s: ${names}; see: docker logs <name>, framework down stops them`,
      )
    }
    await sleep(HEALTH_POLL_MS)
  }
}

/** The phone book once everything is healthy, read from the host like `framework ps` does. */
async function logReady(
  options: DevComposeOptions,
  plan: ComposePlan,
  containers: number,
  log: (line: string) => void,
  /** In the foreground: the dashboard (and no word about running in the background). */
  dev?: DevDashboard,
): Promise<void> {
  const etcd = `http://127.0.0.1:${options.etcdPort}`
  const book = await readPhoneBook({ etcdEndpoints: [etcd], namespace: plan.namespace })
  const rows = Object.keys(plan.replicas).map((role) => {
    const mine = book.instances.filter((instance) => instance.role === role)
    return [role, String(mine.length), mine.map((instance) => instance.url).join('  ')]
  })
  log(
    `${containers} containers healthy (namespace '${plan.namespace}', etcd ${etcd}):\n${formatTable(['role', 'instances', 'urls'], rows)}`,
  )
  if (plan.gateway) {
    log(
      `gateway at http://127.0.0.1:${plan.gateway.port} for ${plan.gateway.exposing.join(', ')}: /trpc/<role>.<procedure>, /api/<role>/<procedure>, /openapi.json`,
    )
  }
  if (dev) {
    log(`dashboard at ${dev.dashboard.url}: topology, recent traces, a call form`)
    return
  }
  const flag = options.etcdPort === 2379 ? '' : ` --etcd ${etcd}`
  log(`running in the background: framework ps${flag} lists them, framework down stops them`)
}

/** `framework down`: stop and remove the app's containers (and their etcd). */
export async function composeDown(appRoot: string, compose: string[]): Promise<number> {
  return run(compose, ['down', '--remove-orphans', '--timeout', '20'], appRoot)
}
