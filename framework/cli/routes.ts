import { loadServiceDefinition } from '../runtime/service-module.js'
import { describeInput } from '../service/input-shape.js'
import { procedureManifest } from '../service/manifest.js'
import { CliError } from './cli-error.js'
import { listServiceRoles } from './service-roles.js'

export interface RouteRow {
  role: string
  path: string
  kind: 'query' | 'mutation'
  input: string
  deps: string[]
}

/** Every role's procedures, from the code in services/ (no etcd needed). */
export async function listRoutes(appRoot: string): Promise<RouteRow[]> {
  const rows: RouteRow[] = []
  const roles = listServiceRoles(appRoot)
  if (roles.length === 0) {
    throw new CliError(
      `no services in ${appRoot}/services; run this in an app, or create one: framework generate service <role>`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  for (const role of roles) {
    const definition = await loadServiceDefinition(appRoot, role)
    const procedures = definition.router._def.procedures as Record<
      string,
      { _def: { inputs?: unknown[] } }
    >
    const deps = Object.keys(definition.deps)
    for (const [path, kind] of Object.entries(procedureManifest(definition.router))) {
      const procedure = procedures[path]
      rows.push({ role, path, kind, input: procedure ? describeInput(procedure) : '-', deps })
    }
  }
  return rows
}
