import type { ProcedureKind } from '../protocol/procedure-kind.js'
import type { AnyServiceDefinition } from '../service/define-service.js'
import { procedureManifest } from '../service/manifest.js'
import { GatewayConfigError } from './define-gateway.js'

/** One procedure the gateway lets outside callers reach. */
export interface ExposedProcedure {
  /** `<role>.<path>`: its name at the gateway (`/trpc/<name>`, `/api/<role>/<path with slashes>`). */
  readonly name: string
  readonly role: string
  /** Its path in the service's router. */
  readonly path: string
  readonly kind: ProcedureKind
  /** The procedure's input parsers (`.input()` may be chained), checked at the edge. */
  readonly inputs: readonly unknown[]
  /** Its output parser, if it has one (for the OpenAPI document only). */
  readonly output: unknown
}

interface ProcedureDef {
  _def: { inputs?: unknown[]; output?: unknown }
}

/**
 * The gateway's table of exposed procedures, from the service definitions of the app (the same
 * code the services run). A name not in it is unreachable: 404, whatever the path form.
 */
export class ExposedProcedures {
  readonly #byName = new Map<string, ExposedProcedure>()
  readonly roles: readonly string[]

  constructor(definitions: readonly AnyServiceDefinition[]) {
    const roles: string[] = []
    for (const definition of definitions) {
      if (definition.expose.length === 0) continue
      if (roles.includes(definition.role)) {
        throw new GatewayConfigError(`two service definitions for role '${definition.role}'`)
      }
      roles.push(definition.role)
      const manifest = procedureManifest(definition.router)
      const procedures = definition.router._def.procedures as Record<string, ProcedureDef>
      for (const path of definition.expose) {
        const kind = manifest[path]
        const procedure = procedures[path]
        if (kind === undefined || procedure === undefined) continue
        const name = `${definition.role}.${path}`
        this.#byName.set(
          name,
          Object.freeze({
            name,
            role: definition.role,
            path,
            kind,
            inputs: procedure._def.inputs ?? [],
            output: procedure._def.output,
          }),
        )
      }
    }
    this.roles = Object.freeze(roles.sort())
  }

  /** The exposed procedure named `<role>.<path>`, or undefined. */
  get(name: string): ExposedProcedure | undefined {
    return this.#byName.get(name)
  }

  /** Every exposed procedure, by name. */
  list(): ExposedProcedure[] {
    return [...this.#byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1))
  }

  get size(): number {
    return this.#byName.size
  }
}
