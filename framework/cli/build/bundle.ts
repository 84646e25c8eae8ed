import { join, relative, sep } from 'node:path'
import type { BuildFailure, Metafile, OutputFile } from 'esbuild'
import { ServiceModuleError } from '../../runtime/service-module.js'
import { CliError } from '../cli-error.js'
import { BUILD_DIR, bundlePath } from './manifest.js'

/** One role's bundle before it is written: its files and the local sources it holds. */
export interface RoleBundle {
  role: string
  files: OutputFile[]
  /** Local source files bundled in, relative to the app root (packages stay external). */
  sources: string[]
}

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
 * ctx.deps, and may import another service's types only (`import type`).
 */
function crossServiceImport(
  role: string,
  inputs: Metafile['inputs'],
  bundled: string[],
): string | undefined {
  const foreign = bundled.find(
    (file) => file.startsWith('services/') && !file.startsWith(serviceDir(role)),
  )
  if (!foreign) return undefined
  const importer = Object.entries(inputs).find(([, input]) =>
    input.imports.some((edge) => edge.path === foreign),
  )?.[0]
  return `${importer ?? serviceDir(role)} imports ${foreign} at runtime: a service may import another service's types only (import type …) and call it through ctx.deps`
}

/**
 * Bundles each role's services/<role>/index.ts with esbuild (node, ESM, source maps, package
 * dependencies left external), in memory: nothing is written when a role fails its checks.
 */
export async function bundleRoles(appRoot: string, roles: string[]): Promise<RoleBundle[]> {
  const esbuild = await loadEsbuild()
  let result: Awaited<ReturnType<typeof esbuild.build<{ metafile: true; write: false }>>>
  try {
    result = await esbuild.build({
      entryPoints: Object.fromEntries(roles.map((role) => [role, `services/${role}/index.ts`])),
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
  return roles.map((role) => {
    const out = bundlePath(role)
    const bundled = Object.keys(outputs[out]?.inputs ?? {})
    const problem = crossServiceImport(role, inputs, bundled)
    if (problem) throw new ServiceModuleError(problem)
    const files = result.outputFiles.filter((file) => {
      const path = relative(appRoot, file.path).split(sep).join('/')
      return path === out || path === `${out}.map`
    })
    return { role, files, sources: bundled.filter((file) => !file.includes(':')).sort() }
  })
}

/** The directory every bundle goes to. */
export function buildDir(appRoot: string): string {
  return join(appRoot, BUILD_DIR)
}
