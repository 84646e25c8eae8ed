import { join } from 'node:path'
import { loadServiceDefinition } from '../../runtime/service-module.js'
import { procedureManifest } from '../../service/manifest.js'
import { CliError } from '../cli-error.js'
import { checkReplicaRoles, listServiceRoles } from '../service-roles.js'

/** One role of `framework dev`: how many instances, on which port. */
export interface DevPlanEntry {
  role: string
  replicas: number
  /** The definition's fixed port; used only when the role runs one instance. */
  port: number | undefined
  procedures: string[]
  deps: number
  /** How many of its procedures the gateway exposes. */
  exposed: number
}

/** Parses `--replicas cache=3,api=2` (or repeated flags). */
export function parseReplicas(values: string[]): Record<string, number> {
  const replicas: Record<string, number> = {}
  for (const item of values.flatMap((value) => value.split(','))) {
    const match = /^([a-z][a-z0-9-]{0,62})=(\d{1,3})$/.exec(item.trim())
    if (!match || Number(match[2]) < 1) {
      throw new CliError(
        `--replicas ${JSON.stringify(item)} is invalid: use role=N with N >= 1, e.g. --replicas cache=3`,
        'FRAMEWORK_ERR_USAGE',
      )
    }
    replicas[match[1]!] = Number(match[2])
  }
  return replicas
}

/** What `framework dev` runs: each role with its instance count, from services/ and --replicas. */
export async function devPlan(
  appRoot: string,
  overrides: Record<string, number>,
): Promise<DevPlanEntry[]> {
  const roles = listServiceRoles(appRoot)
  if (roles.length === 0) {
    throw new CliError(
      `no services in ${join(appRoot, 'services')}; create one: framework generate service <role>`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  checkReplicaRoles(overrides, roles)
  const plan: DevPlanEntry[] = []
  for (const role of roles) {
    const definition = await loadServiceDefinition(appRoot, role)
    plan.push({
      role,
      replicas: overrides[role] ?? definition.replicas,
      port: definition.port,
      procedures: Object.keys(procedureManifest(definition.router)),
      deps: Object.keys(definition.deps).length,
      exposed: definition.expose.length,
    })
  }
  return plan
}
