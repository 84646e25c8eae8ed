import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { CliError } from './cli-error.js'
import { FRAMEWORK_ROOT, FROM_SOURCE } from './framework-package.js'

/** Where an app keeps the framework's packed tarball, which `npm ci` in a Docker build can reach. */
export const VENDOR_DIR = 'vendor'

/** The dependency spec of a vendored tarball, relative to the app root. */
export const vendoredSpec = (tarball: string) => `file:${VENDOR_DIR}/${tarball}`

/** Earlier framework tarballs in vendor/ (an upgrade replaces them). */
function vendoredTarballs(appRoot: string): string[] {
  const dir = join(appRoot, VENDOR_DIR)
  if (!existsSync(dir)) return []
  return readdirSync(dir).filter((file) => /^framework-.*\.tgz$/.test(file))
}

/**
 * Puts the framework into `<app>/vendor/` as an npm tarball and returns its file name: `tarball`
 * when given (a file from `npm pack`), else this framework packed by `npm pack` (in its own repo
 * that builds it first: prepack).
 */
export function vendorFramework(
  appRoot: string,
  log: (line: string) => void,
  tarball?: string,
): string {
  const dir = join(appRoot, VENDOR_DIR)
  mkdirSync(dir, { recursive: true })
  const previous = vendoredTarballs(appRoot)
  let file: string
  if (tarball) {
    const source = resolve(tarball)
    file = basename(source)
    if (!/^framework-.*\.tgz$/.test(file) || !existsSync(source)) {
      throw new CliError(
        `--framework ${tarball} is not a framework tarball (framework-<version>.tgz from npm pack)`,
        'FRAMEWORK_ERR_USAGE',
      )
    }
    copyFileSync(source, join(dir, file))
  } else {
    log(`npm pack ${FROM_SOURCE ? '(building the framework first) ' : ''}…`)
    // An installed package is packed as it is; its prepack (a build) needs the repo.
    const args = FROM_SOURCE
      ? ['pack', '--json', '--pack-destination', dir]
      : ['pack', FRAMEWORK_ROOT, '--json', '--ignore-scripts', '--pack-destination', dir]
    const result = spawnSync('npm', args, {
      cwd: FRAMEWORK_ROOT,
      encoding: 'utf8',
      timeout: 300_000,
    })
    const packed = (() => {
      try {
        return (JSON.parse(result.stdout) as { filename: string }[])[0]?.filename
      } catch {
        return undefined
      }
    })()
    if (result.status !== 0 || !packed) {
      const reason = (result.stderr || result.error?.message || '').trim().split('\n').pop()
      throw new CliError(`npm pack of the framework in ${FRAMEWORK_ROOT} failed: ${reason}`)
    }
    file = basename(packed)
  }
  for (const old of previous.filter((name) => name !== file)) rmSync(join(dir, old))
  log(`create ${VENDOR_DIR}/${file}`)
  return file
}
