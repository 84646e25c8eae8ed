/**
 * The framework as production runs it: the package compiled by tsc (`dist/`) and the example
 * app's services bundled by `framework build` (`.framework/build/<role>.mjs`, run by
 * `start --built`). `npm run build` makes both (~6 s); a bench that compares the framework with
 * Moleculer's published JavaScript runs this, not TypeScript through tsx (whose keep-names
 * helper wraps every named closure: ~4% of a busy service's CPU, only in development).
 */
import { spawn, spawnSync } from 'node:child_process'
import { resolve } from 'node:path'
import { LoggingChild } from './instance.js'
import { REPO_ROOT } from './support.js'

/** The compiled CLI. */
export const BUILT_CLI = resolve(REPO_ROOT, 'dist/cli/bin.js')

let built = false

/** Runs `npm run build` once per bench process; throws with its output when it fails. */
export function ensureBuilt(): void {
  if (built) return
  const result = spawnSync('npm', ['run', 'build'], { cwd: REPO_ROOT, encoding: 'utf8' })
  if (result.status !== 0) {
    throw new Error(`npm run build failed:\n${result.stderr}${result.stdout}`)
  }
  built = true
}

/** The compiled package's `connect` (the same API as framework/index.ts). */
export async function builtConnect(): Promise<typeof import('../framework/index.js')['connect']> {
  ensureBuilt()
  const compiled = (await import(
    resolve(REPO_ROOT, 'dist/index.js')
  )) as typeof import('../framework/index.js')
  return compiled.connect
}

/** `framework start <role> --built` from the compiled CLI, `env` on top of this process's. */
export function startBuiltInstance(
  role: string,
  env: Record<string, string>,
  nodeArgs: readonly string[] = [],
): LoggingChild {
  ensureBuilt()
  const child = spawn(process.execPath, [...nodeArgs, BUILT_CLI, 'start', role, '--built'], {
    cwd: REPO_ROOT,
    env: { ...process.env, NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  return new LoggingChild(child)
}
