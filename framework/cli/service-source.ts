import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { ServiceModuleError, serviceModulePath } from '../runtime/service-module.js'
import { bundlePath, readManifest, staleSources } from './build/manifest.js'
import { loadTypeScript } from './typescript-loader.js'

/** Which code `framework start` runs for a role, and why. */
export interface ServiceSource {
  kind: 'bundle' | 'typescript'
  /** The module to import (absolute). */
  path: string
  /** The line an instance logs about it. */
  describe: string
}

/**
 * The bundle when asked for (`--built`) or in production (`NODE_ENV=production`) when one exists;
 * else services/<role>/index.ts through tsx. A bundle older than its sources is refused.
 */
export async function serviceSource(
  appRoot: string,
  role: string,
  options: { built: boolean; env: NodeJS.ProcessEnv },
): Promise<ServiceSource> {
  const bundle = join(appRoot, bundlePath(role))
  const production = options.env.NODE_ENV === 'production'
  if (options.built || (production && existsSync(bundle))) {
    const entry = readManifest(appRoot)?.roles.find((candidate) => candidate.role === role)
    if (!entry || !existsSync(bundle)) {
      throw new ServiceModuleError(
        `no bundle of '${role}' (${bundlePath(role)}): run framework build`,
      )
    }
    const stale = staleSources(appRoot, entry)
    if (stale.length > 0) {
      throw new ServiceModuleError(
        `the bundle of '${role}' is older than its sources (${stale.slice(0, 3).join(', ')}${stale.length > 3 ? ', …' : ''} changed): run framework build`,
      )
    }
    return {
      kind: 'bundle',
      path: bundle,
      describe: `running the built bundle ${bundlePath(role)}`,
    }
  }
  await loadTypeScript()
  const why = production ? ' (no bundle: framework build makes one)' : ''
  return {
    kind: 'typescript',
    path: serviceModulePath(appRoot, role),
    describe: `running services/${role}/index.ts from TypeScript (tsx)${why}`,
  }
}
