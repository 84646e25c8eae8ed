import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { GATEWAY_MODULE } from '../gateway/config.js'
import { ServiceModuleError, serviceModulePath } from '../runtime/service-module.js'
import {
  bundlePath,
  GATEWAY_BUNDLE,
  readManifest,
  staleGatewaySources,
  staleSources,
} from './build/manifest.js'
import { loadTypeScript } from './typescript-loader.js'

/** Which code `framework start` (or `framework gateway`) runs for a module, and why. */
export interface ServiceSource {
  kind: 'bundle' | 'typescript'
  /** The module to import (absolute). */
  path: string
  /** The line an instance logs about it. */
  describe: string
}

/** How the command was asked to run: `--built`, and the environment (NODE_ENV). */
export interface SourceOptions {
  built: boolean
  env: NodeJS.ProcessEnv
}

/** The one rule: the bundle when asked for (`--built`), or in production when one exists. */
function wantsBundle(options: SourceOptions, bundle: string): boolean {
  return options.built || (options.env.NODE_ENV === 'production' && existsSync(bundle))
}

/** A bundle older than its sources is refused, naming what changed and the fix. */
function refuseStale(what: string, stale: string[]): void {
  if (stale.length === 0) return
  throw new ServiceModuleError(
    `the bundle of ${what} is older than its sources (${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ', …' : ''} changed): run framework build`,
  )
}

const bundleSource = (path: string, relative: string): ServiceSource => ({
  kind: 'bundle',
  path,
  describe: `running the built bundle ${relative}`,
})

/**
 * The bundle when asked for (`--built`) or in production (`NODE_ENV=production`) when one exists;
 * else services/<role>/index.ts through tsx. A bundle older than its sources is refused.
 */
export async function serviceSource(
  appRoot: string,
  role: string,
  options: SourceOptions,
): Promise<ServiceSource> {
  const bundle = join(appRoot, bundlePath(role))
  if (wantsBundle(options, bundle)) {
    const entry = readManifest(appRoot)?.roles.find((candidate) => candidate.role === role)
    if (!entry || !existsSync(bundle)) {
      throw new ServiceModuleError(
        `no bundle of '${role}' (${bundlePath(role)}): run framework build`,
      )
    }
    refuseStale(`'${role}'`, staleSources(appRoot, entry))
    return bundleSource(bundle, bundlePath(role))
  }
  await loadTypeScript()
  const why = options.env.NODE_ENV === 'production' ? ' (no bundle: framework build makes one)' : ''
  return {
    kind: 'typescript',
    path: serviceModulePath(appRoot, role),
    describe: `running services/${role}/index.ts from TypeScript (tsx)${why}`,
  }
}

/**
 * gateway.ts by the same rule: its bundle when built or in production, else the TypeScript;
 * undefined when the app has no gateway settings. Where the app is deployed (no services/ beside
 * the bundles) the build manifest says whether there were any.
 */
export async function gatewayModuleSource(
  appRoot: string,
  options: SourceOptions,
): Promise<ServiceSource | undefined> {
  const file = join(appRoot, GATEWAY_MODULE)
  const bundle = join(appRoot, GATEWAY_BUNDLE)
  if (wantsBundle(options, bundle)) {
    const built = readManifest(appRoot)?.gateway
    if (!existsSync(file)) {
      const deployed = !existsSync(join(appRoot, 'services'))
      return deployed && built && existsSync(bundle)
        ? bundleSource(bundle, GATEWAY_BUNDLE)
        : undefined
    }
    if (!built || !existsSync(bundle)) {
      throw new ServiceModuleError(
        `no bundle of ${GATEWAY_MODULE} (${GATEWAY_BUNDLE}): run framework build`,
      )
    }
    refuseStale(GATEWAY_MODULE, staleGatewaySources(appRoot, built))
    return bundleSource(bundle, GATEWAY_BUNDLE)
  }
  if (!existsSync(file)) return undefined
  await loadTypeScript()
  return {
    kind: 'typescript',
    path: file,
    describe: `running ${GATEWAY_MODULE} from TypeScript (tsx)`,
  }
}
