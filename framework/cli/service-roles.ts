import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { ROLE_PATTERN } from '../service/role.js'

/** Roles under services/: each folder with an index.ts whose name is a valid role, sorted. */
export function listServiceRoles(appRoot: string): string[] {
  const dir = join(appRoot, 'services')
  if (!existsSync(dir)) return []
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(dir, entry.name, 'index.ts')))
    .map((entry) => entry.name)
    .filter((name) => ROLE_PATTERN.test(name))
    .sort()
}
