import { existsSync, watch } from 'node:fs'
import { join } from 'node:path'
import { readAppInfo } from '../config/app.js'
import { parseEtcdEndpoints } from '../config/etcd-endpoints.js'
import { resolveNamespace } from '../config/phone-book.js'
import { GATEWAY_MODULE } from '../gateway/config.js'
import { readManifest } from './build/manifest.js'
import { CliError } from './cli-error.js'
import { startDevDashboard } from './dev/dashboard/dev-dashboard.js'
import { devPlan } from './dev/plan.js'
import { type DevInstance, Supervisor } from './dev/supervisor.js'
import { SourceWatcher } from './dev/watcher.js'
import { EtcdServer } from './local-etcd.js'
import { formatTable, styler } from './output.js'

export interface DevOptions {
  appRoot: string
  /** `role=N` overrides of the replicas in each service definition. */
  replicas: Record<string, number>
  env: NodeJS.ProcessEnv
  /** Where output goes; colors only when it is a TTY. */
  out: NodeJS.WriteStream
  /** Restart a role's instances when a file it loads changes (package.json, tsconfig: every role). */
  watchFiles: boolean
}

/**
 * `framework dev` as local processes: an etcd (ETCD_ENDPOINTS if set, else one started from the
 * etcd binary), then every service × its replicas via `framework start`, and a readiness table
 * once all are registered. A change to a file a role loads (its folder, or a shared module it
 * imports) restarts that role. When some service exposes procedures, `framework gateway` runs
 * too (GATEWAY_PORT, default 8080), restarted with any role or when gateway.ts changes. A trace
 * collector and the dashboard (topology, traces, call form) run in this process on free loopback
 * ports; every process exports its traces to the collector.
 * Ctrl-C stops everything gracefully (SIGTERM: leases revoked), then etcd; nothing is left running.
 */
export async function devLocal(options: DevOptions): Promise<number> {
  const { appRoot, env, out } = options
  const style = styler(out)
  const say = (line: string) => out.write(`${style.bold('framework')} ${line}\n`)
  const namespace = resolveNamespace(env, undefined, () => readAppInfo(appRoot).namespace)

  // etcd starts while the services are built and planned: neither waits for the other.
  let etcd: EtcdServer | undefined
  let endpoints = env.ETCD_ENDPOINTS ? parseEtcdEndpoints(env.ETCD_ENDPOINTS).join(',') : ''
  let etcdStarting: Promise<EtcdServer> | undefined
  if (endpoints) {
    say(`using etcd at ${endpoints} (ETCD_ENDPOINTS)`)
  } else {
    say('starting etcd (temp data dir, free port)…')
    etcdStarting = EtcdServer.start()
    // Whatever fails first is reported; etcd must not be left running either way.
    etcdStarting.catch(() => undefined)
  }
  let plan: Awaited<ReturnType<typeof devPlan>>
  try {
    plan = await devPlan(appRoot, options.replicas, say)
  } catch (err) {
    await etcdStarting?.then(
      (started) => started.dispose(),
      () => undefined,
    )
    throw err
  }
  if (etcdStarting) {
    try {
      etcd = await etcdStarting
    } catch (err) {
      throw new CliError((err as Error).message.split('\n')[0] ?? 'etcd failed to start')
    }
    endpoints = etcd.endpoint
    say(`etcd ready at ${endpoints}`)
  }

  // The collector and the dashboard start before the services, which export their traces to it.
  const dev = await startDevDashboard({
    etcdEndpoints: endpoints.split(','),
    namespace,
    roles: readManifest(appRoot)?.roles ?? [],
    env,
    say,
  })
  if (dev) say(`dashboard at ${dev.dashboard.url} (traces collected at ${dev.collector.endpoint})`)

  const total = plan.reduce((sum, entry) => sum + entry.replicas, 0)
  const printSummary = (instances: DevInstance[]) => {
    const rows = plan.map(({ role }) => {
      const mine = instances.filter((instance) => instance.role === role)
      return [role, String(mine.length), mine.map((instance) => instance.url).join('  ')]
    })
    say(
      `all ${total} instances registered (namespace '${namespace}', etcd ${endpoints}):\n${formatTable(['role', 'instances', 'urls'], rows)}`,
    )
    const first = instances[0]
    if (first)
      say(`try: framework call ${first.role}.<procedure> '<json>'   (framework routes lists them)`)
    if (dev) say(`dashboard at ${dev.dashboard.url}: topology, recent traces, a call form`)
    say('Ctrl-C stops everything')
  }
  const exposing = plan.filter((entry) => entry.exposed > 0).map(({ role }) => role)
  const supervisor = new Supervisor({
    appRoot,
    plan,
    env: { ...env, ...dev?.env, ETCD_ENDPOINTS: endpoints, FRAMEWORK_NAMESPACE: namespace },
    out,
    style,
    say,
    onAllRegistered: printSummary,
    gateway:
      exposing.length > 0
        ? {
            onListening: (url) =>
              say(
                `gateway at ${url} for ${exposing.join(', ')}: /trpc/<role>.<procedure>, /api/<role>/<procedure>, /openapi.json`,
              ),
          }
        : undefined,
  })
  supervisor.startAll()
  const gatewayFile = join(appRoot, GATEWAY_MODULE)
  let gatewayTimer: NodeJS.Timeout | undefined
  const gatewayWatcher =
    options.watchFiles && exposing.length > 0 && existsSync(gatewayFile)
      ? watch(gatewayFile, () => {
          clearTimeout(gatewayTimer)
          gatewayTimer = setTimeout(
            () => void supervisor.restartGateway(`${GATEWAY_MODULE} changed`),
            300,
          )
        })
      : undefined

  // Imports are read while the instances boot; restarts are watched from then on.
  const watcher = options.watchFiles
    ? SourceWatcher.start({
        appRoot,
        roles: plan.map(({ role }) => role),
        say,
        onChange: (roles, files) => void supervisor.restart(roles, `${files.join(', ')} changed`),
      }).then(
        (watching) => {
          const files = new Set([...watching.graph.values()].flatMap((sources) => [...sources]))
          say(
            `watching ${files.size} files the services load, package.json and tsconfig.json for changes`,
          )
          return watching
        },
        (err: unknown) => {
          say(`cannot watch files for changes (${(err as Error).message}); restart by hand`)
          return undefined
        },
      )
    : undefined

  const stop = async (signal: string) => {
    const watching = await watcher
    watching?.close()
    gatewayWatcher?.close()
    clearTimeout(gatewayTimer)
    await supervisor.stop(signal)
    await dev?.close()
    if (etcd) await etcd.dispose()
    say('stopped')
  }
  return new Promise<number>((resolve) => {
    let signalled = false
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) return
      signalled = true
      void stop(signal).then(() => resolve(0))
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}
