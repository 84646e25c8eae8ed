import { createHash } from 'node:crypto'
import type { AnyRouter } from '@trpc/server'
import type { ProcedureKind } from '../protocol/procedure-kind.js'

/** The wire's name for a procedure's kind, named here too for the service's own modules. */
export type { ProcedureKind }

/** `{ "path.to.proc": "query" | "mutation" }`, sorted by path; subscriptions are not served over HTTP. */
export type ProcedureManifest = Record<string, ProcedureKind>

export function procedureManifest(router: AnyRouter): ProcedureManifest {
  const procedures = router._def.procedures as Record<string, { _def: { type: string } }>
  const manifest: ProcedureManifest = {}
  for (const path of Object.keys(procedures).sort()) {
    const type = procedures[path]?._def.type
    if (type === 'query' || type === 'mutation') manifest[path] = type
  }
  return manifest
}

/**
 * A short stable hash of the manifest, so clients can tell contract versions apart: SHA-256 of
 * the procedures as JSON with keys sorted (docs/registry-protocol.md), whatever order it is given.
 */
export function contractHash(manifest: ProcedureManifest): string {
  const sorted = Object.fromEntries(Object.entries(manifest).sort(([a], [b]) => (a < b ? -1 : 1)))
  return createHash('sha256').update(JSON.stringify(sorted)).digest('hex').slice(0, 16)
}
