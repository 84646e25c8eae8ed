import { CliError } from './cli-error.js'

/** Set by bin.js (and here) once tsx's hooks are registered in this process. */
const REGISTERED = Symbol.for('framework.tsx')

/**
 * Lets this process import TypeScript (services/<role>/index.ts) through tsx. Only commands that
 * run service code from source call it: one-shots (ps, call, watch, down) and built instances
 * never load tsx.
 */
export async function loadTypeScript(): Promise<void> {
  const flags = globalThis as { [REGISTERED]?: boolean }
  if (flags[REGISTERED]) return
  let api: typeof import('tsx/esm/api')
  try {
    api = await import('tsx/esm/api')
  } catch (err) {
    throw new CliError(
      `running services from TypeScript needs tsx (${(err as Error).message.split('\n')[0]}): npm install --save-dev tsx, or run the built bundles (framework build, then framework start --built)`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  api.register()
  flags[REGISTERED] = true
}
