import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { readAppInfo } from '../config/app.js'
import { GATEWAY_MODULE, loadGatewayConfig } from '../gateway/config.js'
import {
  GatewayConfigError,
  type GatewayDefinition,
  isGatewayDefinition,
} from '../gateway/define-gateway.js'
import { startGateway } from '../gateway/start-gateway.js'
import { loadServiceDefinition } from '../runtime/service-module.js'
import type { AnyServiceDefinition } from '../service/define-service.js'
import { listServiceRoles } from './service-roles.js'
import { stopOnSignal } from './stop-on-signal.js'

/** The app's services that expose procedures, from services/ (each module is loaded). */
export async function exposingServices(appRoot: string): Promise<AnyServiceDefinition[]> {
  const definitions: AnyServiceDefinition[] = []
  for (const role of listServiceRoles(appRoot)) {
    const definition = await loadServiceDefinition(appRoot, role)
    if (definition.expose.length > 0) definitions.push(definition)
  }
  return definitions
}

/**
 * `gateway.ts` at the app root (or `file`), default-exporting `defineGateway(...)`; undefined
 * when the default file does not exist (the defaults: no authentication, CORS or rate limit).
 */
export async function loadGatewayModule(
  appRoot: string,
  file?: string,
): Promise<GatewayDefinition | undefined> {
  const path = file === undefined ? join(appRoot, GATEWAY_MODULE) : resolve(file)
  if (!existsSync(path)) {
    if (file === undefined) return undefined
    throw new GatewayConfigError(`gateway settings ${path} do not exist; fix --config`)
  }
  const module = (await import(pathToFileURL(path).href)) as { default?: unknown }
  if (!isGatewayDefinition(module.default)) {
    throw new GatewayConfigError(
      `${path} must default-export defineGateway({ ... }) (export default defineGateway(...))`,
    )
  }
  return module.default
}

/**
 * `framework gateway`: the edge, in front of every service that exposes procedures, on
 * GATEWAY_PORT (default 8080); SIGTERM/SIGINT answer the requests in progress, then exit 0.
 */
export async function gatewayCommand(dir: string, configFile: string | undefined): Promise<void> {
  const appRoot = resolve(dir)
  const app = readAppInfo(appRoot)
  const config = loadGatewayConfig(process.env, { namespace: app.namespace })
  const definitions = await exposingServices(appRoot)
  const gateway = await loadGatewayModule(appRoot, configFile)
  const running = await startGateway({ definitions, gateway, config, app })
  stopOnSignal(() => running.stop(), running.log, config.drainTimeoutMs + 10_000)
}
