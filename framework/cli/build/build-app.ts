import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { GATEWAY_MODULE } from '../../gateway/config.js'
import { loadServiceDefinition } from '../../runtime/service-module.js'
import { inputJsonSchema } from '../../service/input-schema.js'
import { describeInput } from '../../service/input-shape.js'
import { procedureManifest } from '../../service/manifest.js'
import { CliError } from '../cli-error.js'
import { frameworkPackage } from '../framework-package.js'
import { listServiceRoles } from '../service-roles.js'
import { buildDir, bundleApp } from './bundle.js'
import {
  type BuildManifest,
  bundlePath,
  GATEWAY_BUNDLE,
  type GatewayManifest,
  hashFile,
  MANIFEST_VERSION,
  type RoleManifest,
  readManifest,
  staleGatewaySources,
  staleSources,
  writeManifest,
} from './manifest.js'

export interface BuildOptions {
  appRoot: string
  /** Roles to build; empty: every role under services/. */
  roles: string[]
  log: (line: string) => void
}

/** The roles under services/, or a clear error when there are none. */
export function appRoles(appRoot: string): string[] {
  const roles = listServiceRoles(appRoot)
  if (roles.length === 0) {
    throw new CliError(
      `no services in ${join(appRoot, 'services')}; run this in an app, or create one: framework generate service <role>`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  return roles
}

/**
 * `framework build [role…]`: one bundle per role (esbuild), gateway.ts's bundle when the app has
 * one (rebuilt at every build: it is small), and a manifest of what each holds (replicas, port,
 * procedures, deps, exposure, its sources' hashes). The definitions are read from the bundles
 * themselves, on plain node: what the manifest says is what the bundle runs.
 */
export async function buildApp(options: BuildOptions): Promise<BuildManifest> {
  const { appRoot, log } = options
  const all = appRoles(appRoot)
  for (const role of options.roles) {
    if (!all.includes(role)) {
      throw new CliError(
        `no service '${role}' in services/ (${all.join(', ')})`,
        'FRAMEWORK_ERR_USAGE',
      )
    }
  }
  const roles = options.roles.length > 0 ? options.roles : all
  const started = performance.now()
  const bundles = await bundleApp(appRoot, roles)
  const dir = buildDir(appRoot)
  mkdirSync(dir, { recursive: true })
  const built: RoleManifest[] = []
  for (const bundle of bundles.roles) {
    for (const file of bundle.files) writeFileSync(file.path, file.contents)
    const definition = await loadServiceDefinition(
      appRoot,
      bundle.role,
      join(appRoot, bundlePath(bundle.role)),
    )
    const procedures = definition.router._def.procedures as Record<
      string,
      { _def: { inputs?: unknown[] } }
    >
    built.push({
      role: bundle.role,
      bundle: bundlePath(bundle.role),
      replicas: definition.replicas,
      port: definition.port ?? null,
      deps: Object.keys(definition.deps),
      expose: [...definition.expose],
      procedures: Object.fromEntries(
        Object.entries(procedureManifest(definition.router)).map(([path, kind]) => {
          const procedure = procedures[path]
          return [
            path,
            {
              kind,
              input: procedure ? describeInput(procedure) : '-',
              inputSchema: inputJsonSchema(procedure?._def.inputs ?? []) ?? null,
            },
          ]
        }),
      ),
      sources: Object.fromEntries(
        bundle.sources.map((file) => [file, hashFile(join(appRoot, file))]),
      ),
    })
  }
  // Roles built before and still under services/ keep their entries; removed roles go.
  const previous = readManifest(appRoot)?.roles ?? []
  for (const gone of previous.filter((entry) => !all.includes(entry.role))) {
    rmSync(join(appRoot, gone.bundle), { force: true })
    rmSync(join(appRoot, `${gone.bundle}.map`), { force: true })
  }
  const kept = previous.filter((entry) => all.includes(entry.role) && !roles.includes(entry.role))
  let gateway: GatewayManifest | null = null
  if (bundles.gateway) {
    for (const file of bundles.gateway.files) writeFileSync(file.path, file.contents)
    gateway = {
      bundle: GATEWAY_BUNDLE,
      sources: Object.fromEntries(
        bundles.gateway.sources.map((file) => [file, hashFile(join(appRoot, file))]),
      ),
    }
  } else {
    rmSync(join(appRoot, GATEWAY_BUNDLE), { force: true })
    rmSync(join(appRoot, `${GATEWAY_BUNDLE}.map`), { force: true })
  }
  const manifest: BuildManifest = {
    v: MANIFEST_VERSION,
    framework: frameworkPackage().version,
    roles: [...kept, ...built].sort((a, b) => a.role.localeCompare(b.role)),
    gateway,
  }
  writeManifest(appRoot, manifest)
  const written = roles.map((role) => bundlePath(role))
  if (gateway) written.push(gateway.bundle)
  log(
    `built ${written.join(', ')} and the manifest in ${Math.round(performance.now() - started)} ms`,
  )
  return manifest
}

/**
 * The app as built, for commands that plan from it (routes, compose, k8s, dev): the manifest
 * when it is current (every role under services/ built from its present sources, and gateway.ts
 * if there is one), else a build.
 */
export async function builtApp(
  appRoot: string,
  log: (line: string) => void,
): Promise<BuildManifest> {
  const roles = appRoles(appRoot)
  const manifest = readManifest(appRoot)
  const current =
    manifest !== undefined &&
    manifest.framework === frameworkPackage().version &&
    manifest.roles.length === roles.length &&
    manifest.roles.every(
      (entry) => roles.includes(entry.role) && staleSources(appRoot, entry).length === 0,
    ) &&
    existsSync(join(appRoot, GATEWAY_MODULE)) === (manifest.gateway !== null) &&
    (manifest.gateway === null || staleGatewaySources(appRoot, manifest.gateway).length === 0)
  if (current) return manifest
  log('building the services first (changed since the last framework build)')
  return buildApp({ appRoot, roles: [], log })
}
