import { builtApp } from '../build/build-app.js'
import { checkReplicaRoles } from '../replicas.js'

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

/** What `framework dev` runs: each role with its instance count, from the build manifest and --replicas. */
export async function devPlan(
  appRoot: string,
  overrides: Record<string, number>,
  log: (line: string) => void,
): Promise<DevPlanEntry[]> {
  const manifest = await builtApp(appRoot, log)
  checkReplicaRoles(
    overrides,
    manifest.roles.map(({ role }) => role),
  )
  return manifest.roles.map((entry) => ({
    role: entry.role,
    replicas: overrides[entry.role] ?? entry.replicas,
    port: entry.port ?? undefined,
    procedures: Object.keys(entry.procedures),
    deps: entry.deps.length,
    exposed: entry.expose.length,
  }))
}
