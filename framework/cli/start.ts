import { resolve } from 'node:path'
import { readAppInfo } from '../config/app.js'
import { startInstance } from '../runtime/boot.js'
import { loadConfig } from '../runtime/config.js'
import { loadServiceDefinition } from '../runtime/service-module.js'
import { serviceSource } from './service-source.js'
import { stopOnSignal } from './stop-on-signal.js'

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
  // etcd will never let these credentials register this role (they are another role's): the
  // registration logged the line; stop and exit 2, since retrying cannot fix the input.
  instance.registration.once('refused', () => {
    void instance.stop().finally(() => process.exit(2))
  })
  instance.log.info({ code: source.kind, module: source.path }, source.describe)
  // The drain timeout plus time for the lease revoke and closing the clients.
  stopOnSignal(() => instance.stop(), instance.log, config.drainTimeoutMs + 10_000)
}
