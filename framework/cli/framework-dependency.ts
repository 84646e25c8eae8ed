import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { FRAMEWORK_ROOT } from './framework-package.js'
import { vendoredSpec, vendorFramework } from './vendor.js'

/**
 * How an app depends on the framework: `--framework` as an npm spec (a published version), or a
 * tarball vendored into the app (the one given, else this framework packed), which `npm ci`
 * inside a Docker build can install.
 */
export function frameworkDependencySpec(
  appRoot: string,
  framework: string | undefined,
  log: (line: string) => void,
): string {
  if (framework !== undefined && !framework.endsWith('.tgz')) return framework
  return vendoredSpec(vendorFramework(appRoot, log, framework))
}

/** The versions of the dev tools an app runs services with (tsx) and builds them with (esbuild). */
export function toolVersions(): { esbuild: string; tsx: string } {
  const pkg = JSON.parse(readFileSync(join(FRAMEWORK_ROOT, 'package.json'), 'utf8')) as {
    peerDependencies?: Record<string, string>
  }
  return {
    esbuild: pkg.peerDependencies?.esbuild ?? '*',
    tsx: pkg.peerDependencies?.tsx ?? '*',
  }
}
