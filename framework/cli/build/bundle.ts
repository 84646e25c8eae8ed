import { existsSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import type { BuildFailure, Metafile, OutputFile } from 'esbuild'
import { GATEWAY_MODULE } from '../../gateway/config.js'
import { ServiceModuleError } from '../../runtime/service-module.js'
import { CliError } from '../cli-error.js'
import { BUILD_DIR, bundlePath, GATEWAY_BUNDLE } from './manifest.js'

/** One role's bundle before it is written: its files and the local sources it holds. */
export interface RoleBundle {
  role: string
  files: OutputFile[]
  /** Local source files bundled in, relative to the app root (packages stay external). */
  sources: string[]
}

/** What one build makes: a bundle per role, and gateway.ts's when the app has one. */
export interface AppBundles {
  roles: RoleBundle[]
  gateway: Omit<RoleBundle, 'role'> | undefined
}

/** esbuild's entry name for gateway.ts: not a role name (roles start with a-z). */
const GATEWAY_ENTRY = '_gateway'

async function loadEsbuild(): Promise<typeof import('esbuild')> {
  try {
    return await import('esbuild')
  } catch (err) {
    throw new CliError(
      `framework build needs esbuild (${(err as Error).message.split('\n')[0]}): npm install --save-dev esbuild`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
}

/** `services/<role>/` as esbuild's metafile names it (relative, forward slashes). */
const serviceDir = (role: string) => `services/${role}/`

/**
 * A runtime import of another service's code, by the file that makes it: services talk through
 * ctx.deps, and may import another service's types only (`import type`). The gateway (role
 * undefined) reaches every service through its clients: it may import none of their code.
 */
function crossServiceImport(
  role: string | undefined,
  inputs: Metafile['inputs'],
  bundled: string[],
): string | undefined {
  const foreign = bundled.find(
    (file) =>
      file.startsWith('services/') && (role === undefined || !file.startsWith(serviceDir(role))),
  )
  if (!foreign) return undefined
  const importer = Object.entries(inputs).find(([, input]) =>
    input.imports.some((edge) => edge.path === foreign),
  )?.[0]
  return role === undefined
    ? `${importer ?? GATEWAY_MODULE} imports ${foreign} at runtime: ${GATEWAY_MODULE} may import a service's types only (import type …)`
    : `${importer ?? serviceDir(role)} imports ${foreign} at runtime: a service may import another service's types only (import type …) and call it through ctx.deps`
}

/**
 * Bundles each role's services/<role>/index.ts, and gateway.ts when the app has one, with esbuild
 * (node, ESM, source maps, package dependencies left external), in memory: nothing is written
 * when a bundle fails its checks.
 */
export async function bundleApp(appRoot: string, roles: string[]): Promise<AppBundles> {
  const esbuild = await loadEsbuild()
  const withGateway = existsSync(join(appRoot, GATEWAY_MODULE))
  const entryPoints: Record<string, string> = Object.fromEntries(
    roles.map((role) => [role, `services/${role}/index.ts`]),
  )
  if (withGateway) entryPoints[GATEWAY_ENTRY] = GATEWAY_MODULE
  let result: Awaited<ReturnType<typeof esbuild.build<{ metafile: true; write: false }>>>
  try {
    result = await esbuild.build({
      entryPoints,
      absWorkingDir: appRoot,
      outdir: BUILD_DIR,
      outExtension: { '.js': '.mjs' },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      sourcemap: 'linked',
      metafile: true,
      write: false,
      logLevel: 'silent',
    })
  } catch (err) {
    const first = (err as BuildFailure).errors?.[0]
    if (!first) throw err
    const where = first.location
      ? `${first.location.file}:${first.location.line}:${first.location.column + 1}: `
      : ''
    throw new ServiceModuleError(`framework build failed: ${where}${first.text}`)
  }
  const { inputs, outputs } = result.metafile
  const take = (role: string | undefined, out: string) => {
    const bundled = Object.keys(outputs[out]?.inputs ?? {})
    const problem = crossServiceImport(role, inputs, bundled)
    if (problem) throw new ServiceModuleError(problem)
    const files = result.outputFiles.filter((file) => {
      const path = relative(appRoot, file.path).split(sep).join('/')
      return path === out || path === `${out}.map`
    })
    return { files, sources: bundled.filter((file) => !file.includes(':')).sort() }
  }
  return {
    roles: roles.map((role) => ({ role, ...take(role, bundlePath(role)) })),
    gateway: withGateway ? take(undefined, GATEWAY_BUNDLE) : undefined,
  }
}

/** The directory every bundle goes to. */
export function buildDir(appRoot: string): string {
  return join(appRoot, BUILD_DIR)
}
