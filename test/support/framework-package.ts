import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { REPO_ROOT } from './instance.js'

/** Where the suite keeps the framework packed as npm would publish it (`npm pack`). */
export const PACK_DIR = join(REPO_ROOT, '.tmp', 'pack')

/** The packed framework (framework-<version>.tgz), made by the suite's globalSetup. */
export function frameworkTarball(): string {
  const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
    version: string
  }
  return join(PACK_DIR, `framework-${version}.tgz`)
}

/** Newest modification time under `dir` (ms). */
function newest(dir: string): number {
  let latest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile())
      latest = Math.max(latest, statSync(join(entry.parentPath, entry.name)).mtimeMs)
  }
  return latest
}

function run(args: string[]): void {
  const result = spawnSync('npm', args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 300_000 })
  if (result.status !== 0) {
    throw new Error(`npm ${args.join(' ')} failed:\n${result.stderr}${result.stdout}`)
  }
}

/**
 * Builds the package (dist/, when older than framework/) and packs it once per run: tests of a
 * generated app install this tarball as users do, and apps linked to this repo import dist/.
 */
export function packFramework(): string {
  const dist = join(REPO_ROOT, 'dist')
  const stamp = join(dist, 'index.js')
  if (!existsSync(stamp) || statSync(stamp).mtimeMs < newest(join(REPO_ROOT, 'framework'))) {
    run(['run', 'build:package'])
  }
  mkdirSync(PACK_DIR, { recursive: true })
  run(['pack', '--ignore-scripts', '--pack-destination', PACK_DIR])
  return frameworkTarball()
}

/** vitest globalSetup. */
export default function setup(): void {
  packFramework()
}
