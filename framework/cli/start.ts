import { resolve } from 'node:path'
import { readAppInfo } from '../config/app.js'
import { startInstance } from '../runtime/boot.js'
import { loadConfig } from '../runtime/config.js'
import { loadServiceDefinition } from '../runtime/service-module.js'
import { stopOnSignal } from './stop-on-signal.js'

/**
 * `framework start <role>`: boot one instance; SIGTERM/SIGINT stop it gracefully with exit 0.
 * A failed boot throws: the CLI prints it and exits with its code's exit code (2 for bad config).
 */
export async function startCommand(role: string, dir: string): Promise<void> {
  const appRoot = resolve(dir)
  const app = readAppInfo(appRoot)
  const config = loadConfig(process.env, { namespace: app.namespace })
  const definition = await loadServiceDefinition(appRoot, role)
  const instance = await startInstance({ definition, config, app })
  // The drain timeout plus time for the lease revoke and closing the clients.
  stopOnSignal(() => instance.stop(), instance.log, config.drainTimeoutMs + 10_000)
}
