import { resolve } from 'node:path'
import { readAppInfo } from '../config/app.js'
import { startInstance } from '../runtime/boot.js'
import { loadConfig } from '../runtime/config.js'
import { loadServiceDefinition } from '../runtime/service-module.js'
import { serviceSource } from './service-source.js'

/**
 * `framework start <role> [--built]`: boot one instance, from its bundle or its TypeScript
 * (serviceSource says which, and the instance logs it); SIGTERM/SIGINT stop it gracefully with
 * exit 0. A failed boot throws: the CLI prints it and exits with its code's exit code (2 for bad
 * config).
 */
export async function startCommand(role: string, dir: string, built: boolean): Promise<void> {
  const appRoot = resolve(dir)
  const app = readAppInfo(appRoot)
  const config = loadConfig(process.env, { namespace: app.namespace })
  const source = await serviceSource(appRoot, role, { built, env: process.env })
  const definition = await loadServiceDefinition(appRoot, role, source.path)
  const instance = await startInstance({ definition, config, app })
  instance.log.info({ code: source.kind, module: source.path }, source.describe)
  let shuttingDown = false
  const shutdown = (signal: string) => {
    // Ctrl-C in a terminal signals the whole process group, and `framework dev` then sends
    // SIGTERM too: later signals must not cut the drain short.
    if (shuttingDown) return
    shuttingDown = true
    try {
      instance.log.info({ signal }, 'signal received')
    } catch {
      // stdout gone (the parent died): stop anyway.
    }
    // Whatever hangs (an etcd that does not answer, a procedure that never returns), the
    // process ends: the drain timeout plus time for the lease revoke and closing the clients.
    const limitMs = config.drainTimeoutMs + 10_000
    setTimeout(() => {
      instance.log.error({ limitMs }, 'shutdown did not finish in time; exiting')
      process.exit(1)
    }, limitMs).unref()
    instance.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        instance.log.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', shutdown)
  process.on('SIGINT', shutdown)
  // Started by `framework dev --local`: stop when it is gone (this process was re-parented).
  const parent = Number(process.env.FRAMEWORK_PARENT_PID)
  if (Number.isInteger(parent) && parent > 0) {
    setInterval(() => {
      if (process.ppid !== parent) shutdown('parent exited')
    }, 1_000).unref()
  }
}
