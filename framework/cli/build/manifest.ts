import { createHash } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { GATEWAY_MODULE } from '../../gateway/config.js'
import type { ProcedureKind } from '../../protocol/procedure-kind.js'
import { serviceModulePath } from '../../runtime/service-module.js'

/** Where `framework build` writes, under the app root: one bundle per role and the manifest. */
export const BUILD_DIR = '.framework/build'
const MANIFEST_FILE = 'manifest.json'
export const MANIFEST_VERSION = 4
/** The gateway's settings bundle (from gateway.ts); `_` keeps it apart from every role's bundle. */
export const GATEWAY_BUNDLE = `${BUILD_DIR}/_gateway.mjs`

/** One role as built: what routes, compose, k8s and dev read without loading TypeScript. */
export interface RoleManifest {
  role: string
  /** The bundle, relative to the app root. */
  bundle: string
  replicas: number
  /** The definition's fixed port, if any. */
  port: number | null
  /** Roles it calls through ctx.deps. */
  deps: string[]
  /** Procedures the gateway may reach (`expose`). */
  expose: string[]
  /** `input`: the one-line summary (routes); `inputSchema`: JSON Schema (the dev dashboard's form). */
  procedures: Record<
    string,
    { kind: ProcedureKind; input: string; inputSchema: Record<string, unknown> | null }
  >
  /** Local source files bundled in (relative to the app root) and a hash of each. */
  sources: Record<string, string>
}

/** gateway.ts as built: what `framework gateway` runs in production instead of the TypeScript. */
export interface GatewayManifest {
  /** The bundle, relative to the app root. */
  bundle: string
  /** Local source files bundled in (relative to the app root) and a hash of each. */
  sources: Record<string, string>
}

export interface BuildManifest {
  v: typeof MANIFEST_VERSION
  /** The framework version that built it. */
  framework: string
  roles: RoleManifest[]
  /** The app's gateway.ts, bundled; null when the app has none. */
  gateway: GatewayManifest | null
}

export function bundlePath(role: string): string {
  return `${BUILD_DIR}/${role}.mjs`
}

export function hashFile(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16)
}

export function writeManifest(appRoot: string, manifest: BuildManifest): void {
  writeFileSync(join(appRoot, BUILD_DIR, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`)
}

/** The manifest of the last build, or undefined when there is none (or an older format). */
export function readManifest(appRoot: string): BuildManifest | undefined {
  const path = join(appRoot, BUILD_DIR, MANIFEST_FILE)
  if (!existsSync(path)) return undefined
  try {
    const manifest = JSON.parse(readFileSync(path, 'utf8')) as BuildManifest
    return manifest.v === MANIFEST_VERSION && Array.isArray(manifest.roles) ? manifest : undefined
  } catch {
    return undefined
  }
}

/**
 * The sources of a built role that changed (or vanished) since its bundle was built. A deployed
 * bundle has no sources beside it (no services/<role>/index.ts): nothing to compare, none stale.
 */
export function staleSources(appRoot: string, role: RoleManifest): string[] {
  if (!existsSync(serviceModulePath(appRoot, role.role))) return []
  return changedSources(appRoot, role.sources)
}

/** The same for the gateway's bundle: its entry is gateway.ts, absent where it is deployed. */
export function staleGatewaySources(appRoot: string, gateway: GatewayManifest): string[] {
  if (!existsSync(join(appRoot, GATEWAY_MODULE))) return []
  return changedSources(appRoot, gateway.sources)
}

function changedSources(appRoot: string, sources: Record<string, string>): string[] {
  return Object.entries(sources)
    .filter(([file, hash]) => {
      const path = join(appRoot, file)
      return !existsSync(path) || hashFile(path) !== hash
    })
    .map(([file]) => file)
}
