import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { readAppInfo } from '../config/app.js'
import { loadGatewayConfig } from '../gateway/config.js'
import {
  GatewayConfigError,
  type GatewayDefinition,
  isGatewayDefinition,
} from '../gateway/define-gateway.js'
import { startGateway } from '../gateway/start-gateway.js'
import { loadServiceDefinition } from '../runtime/service-module.js'
import type { AnyServiceDefinition } from '../service/define-service.js'
import { readManifest } from './build/manifest.js'
import { listServiceRoles } from './service-roles.js'
import {
  gatewayModuleSource,
  type ServiceSource,
  type SourceOptions,
  serviceSource,
} from './service-source.js'
import { stopOnSignal } from './stop-on-signal.js'
import { loadTypeScript } from './typescript-loader.js'

/** The app's roles: services/ where the sources are, else (deployed) the build manifest's. */
function gatewayRoles(appRoot: string): string[] {
  const roles = listServiceRoles(appRoot)
  return roles.length > 0 ? roles : (readManifest(appRoot)?.roles.map(({ role }) => role) ?? [])
}

/**
 * The app's services that expose procedures, each loaded from the code `framework start` would
 * run for it (serviceSource: its bundle when built or in production, else its TypeScript). A
 * bundle's exposure is in the build manifest: bundles exposing nothing are not loaded.
 */
export async function exposingServices(
  appRoot: string,
  options: SourceOptions,
): Promise<{ definitions: AnyServiceDefinition[]; sources: ServiceSource[] }> {
  const manifest = readManifest(appRoot)
  const definitions: AnyServiceDefinition[] = []
  const sources: ServiceSource[] = []
  for (const role of gatewayRoles(appRoot)) {
    const source = await serviceSource(appRoot, role, options)
    const built = manifest?.roles.find((entry) => entry.role === role)
    if (source.kind === 'bundle' && built?.expose.length === 0) continue
    const definition = await loadServiceDefinition(appRoot, role, source.path)
    if (definition.expose.length === 0) continue
    definitions.push(definition)
    sources.push(source)
  }
  return { definitions, sources }
}

/**
 * The gateway's settings: `file` (--config) as given, else gateway.ts at the app root chosen like
 * the services' code (gatewayModuleSource); undefined when there are none (the defaults: no
 * authentication, CORS or rate limit).
 */
export async function loadGatewayModule(
  appRoot: string,
  file: string | undefined,
  options: SourceOptions,
): Promise<{ definition: GatewayDefinition; source: ServiceSource } | undefined> {
  let source: ServiceSource | undefined
  if (file === undefined) {
    source = await gatewayModuleSource(appRoot, options)
    if (!source) return undefined
  } else {
    const path = resolve(file)
    if (!existsSync(path)) {
      throw new GatewayConfigError(`gateway settings ${path} do not exist; fix --config`)
    }
    const typescript = /\.[cm]?ts$/.test(path)
    if (typescript) await loadTypeScript()
    source = {
      kind: typescript ? 'typescript' : 'bundle',
      path,
      describe: `gateway settings from ${path} (--config)`,
    }
  }
  const module = (await import(pathToFileURL(source.path).href)) as { default?: unknown }
  if (!isGatewayDefinition(module.default)) {
    throw new GatewayConfigError(
      `${source.path} must default-export defineGateway({ ... }) (export default defineGateway(...))`,
    )
  }
  return { definition: module.default, source }
}

/**
 * `framework gateway [--built]`: the edge, in front of every service that exposes procedures, on
 * GATEWAY_PORT (default 8080), from the services' bundles when built or in production (as
 * `framework start`); SIGTERM/SIGINT answer the requests in progress, then exit 0.
 */
export async function gatewayCommand(
  dir: string,
  configFile: string | undefined,
  built: boolean,
): Promise<void> {
  const appRoot = resolve(dir)
  const app = readAppInfo(appRoot)
  const config = loadGatewayConfig(process.env, { namespace: app.namespace })
  const options = { built, env: process.env }
  const { definitions, sources } = await exposingServices(appRoot, options)
  const settings = await loadGatewayModule(appRoot, configFile, options)
  const running = await startGateway({ definitions, gateway: settings?.definition, config, app })
  for (const source of settings ? [...sources, settings.source] : sources) {
    running.log.info({ code: source.kind, module: source.path }, source.describe)
  }
  stopOnSignal(() => running.stop(), running.log, config.drainTimeoutMs + 10_000)
}
