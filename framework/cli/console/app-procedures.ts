import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { loadServiceDefinition } from '../../runtime/service-module.js'
import { listServiceRoles } from '../service-roles.js'
import { loadTypeScript } from '../typescript-loader.js'

/** A procedure as the app's code defines it: its kind and its input parsers (zod schemas). */
export interface CodeProcedure {
  kind: 'query' | 'mutation'
  parsers: readonly unknown[]
}

/** Procedures by role, then by path (`admin.flush`), from the code under services/. */
export type AppProcedures = Map<string, Map<string, CodeProcedure>>

interface ProcedureDef {
  _def: { type?: string; inputs?: unknown[] }
}

/**
 * The procedures of every service under `appRoot`/services, loaded through tsx (as `framework
 * start` runs them, without starting them), so the console checks input against the service's
 * own schema before calling. A role whose module does not load is reported and left unchecked.
 */
export async function loadAppProcedures(
  appRoot: string,
  warn: (line: string) => void,
): Promise<AppProcedures> {
  const procedures: AppProcedures = new Map()
  if (!existsSync(join(appRoot, 'services'))) return procedures
  const roles = listServiceRoles(appRoot)
  if (roles.length === 0) return procedures
  await loadTypeScript()
  for (const role of roles) {
    try {
      const definition = await loadServiceDefinition(appRoot, role)
      const defs = definition.router._def.procedures as Record<string, ProcedureDef>
      const byPath = new Map<string, CodeProcedure>()
      for (const [path, procedure] of Object.entries(defs)) {
        const kind = procedure._def.type
        if (kind !== 'query' && kind !== 'mutation') continue
        byPath.set(path, { kind, parsers: procedure._def.inputs ?? [] })
      }
      procedures.set(role, byPath)
    } catch (err) {
      warn(
        `services/${role}: not loaded (${(err as Error).message.split('\n')[0]}); its input is not checked before calls`,
      )
    }
  }
  return procedures
}
