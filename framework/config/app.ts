import { readFileSync } from 'node:fs'
import { join } from 'node:path'

/** What the runtime takes from the app's package.json. */
export interface AppInfo {
  /** Default phone book namespace: the package name, scope folded in (`@shop/api` → `shop-api`). */
  namespace: string
  version: string
}

export function readAppInfo(appRoot: string): AppInfo {
  let pkg: { name?: unknown; version?: unknown } = {}
  try {
    pkg = JSON.parse(readFileSync(join(appRoot, 'package.json'), 'utf8'))
  } catch {
    // No package.json: defaults below; FRAMEWORK_NAMESPACE can still name the namespace.
  }
  const name = typeof pkg.name === 'string' && pkg.name !== '' ? pkg.name : 'default'
  return {
    namespace: name.replace(/^@/, '').replace(/[^A-Za-z0-9._-]/g, '-'),
    version: typeof pkg.version === 'string' ? pkg.version : '0.0.0',
  }
}
