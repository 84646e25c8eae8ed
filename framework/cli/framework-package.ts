import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'

/** The framework package's root: this repo (the CLI running from TypeScript) or the installed package. */
export const FRAMEWORK_ROOT = resolve(import.meta.dirname, '../..')

/** True when the CLI runs from its TypeScript sources (the framework's own repo), not from dist/. */
export const FROM_SOURCE = import.meta.url.endsWith('.ts')

/** The framework's package name and version, from its package.json. */
export function frameworkPackage(): { name: string; version: string } {
  const pkg = JSON.parse(readFileSync(resolve(FRAMEWORK_ROOT, 'package.json'), 'utf8')) as {
    name: string
    version: string
  }
  return { name: pkg.name, version: pkg.version }
}
