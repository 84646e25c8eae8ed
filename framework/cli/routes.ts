import { builtApp } from './build/build-app.js'

export interface RouteRow {
  role: string
  path: string
  kind: 'query' | 'mutation'
  input: string
  deps: string[]
  /** Reachable through the gateway (the service's `expose`). */
  exposed: boolean
}

/** Every role's procedures, from the build manifest (built first if out of date; no etcd needed). */
export async function listRoutes(
  appRoot: string,
  log: (line: string) => void,
): Promise<RouteRow[]> {
  const manifest = await builtApp(appRoot, log)
  return manifest.roles.flatMap((entry) =>
    Object.entries(entry.procedures).map(([path, { kind, input }]) => ({
      role: entry.role,
      path,
      kind,
      input,
      deps: entry.deps,
      exposed: entry.expose.includes(path),
    })),
  )
}
