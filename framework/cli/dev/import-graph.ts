import { basename, dirname, join, resolve, sep } from 'node:path'
import { build } from 'esbuild'
import { serviceModulePath } from '../../runtime/service-module.js'

/** Files at the app root whose change restarts every role: dependencies and compiler settings. */
export const APP_WIDE_FILES = new Set([
  'package.json',
  'package-lock.json',
  'npm-shrinkwrap.json',
  'yarn.lock',
  'pnpm-lock.yaml',
  'tsconfig.json',
])

/** Each role's local source files (absolute): its own and the shared modules it imports. */
export type ImportGraph = Map<string, ReadonlySet<string>>

/**
 * The local files `services/<role>/index.ts` loads, found by esbuild's bundler without writing
 * anything: packages stay external, type-only imports are dropped (so `import type` of another
 * service is no edge). Rejects when the code does not build (a file mid-edit).
 */
export async function roleSources(appRoot: string, role: string): Promise<Set<string>> {
  const result = await build({
    entryPoints: [serviceModulePath(appRoot, role)],
    absWorkingDir: appRoot,
    bundle: true,
    write: false,
    metafile: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    logLevel: 'silent',
  })
  return new Set(Object.keys(result.metafile.inputs).map((input) => resolve(appRoot, input)))
}

/** The roles a changed file restarts: all for an app-wide file, else those whose sources hold it. */
export function rolesAffectedBy(file: string, appRoot: string, graph: ImportGraph): string[] {
  if (dirname(file) === appRoot && APP_WIDE_FILES.has(basename(file))) return [...graph.keys()]
  return [...graph.entries()]
    .filter(
      ([role, sources]) =>
        sources.has(file) || file.startsWith(`${join(appRoot, 'services', role)}${sep}`),
    )
    .map(([role]) => role)
}
