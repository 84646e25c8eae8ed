/**
 * A one-line summary of a procedure's input for `framework routes`: `{ key: string, ttl?: number }`.
 * Reads zod 4's schema definitions (`_zod.def`) structurally, so schemas from any copy of zod work.
 */
interface ZodDef {
  type: string
  shape?: Record<string, { _zod?: { def: ZodDef } }>
  element?: { _zod?: { def: ZodDef } }
  innerType?: { _zod?: { def: ZodDef } }
  options?: { _zod?: { def: ZodDef } }[]
  entries?: Record<string, string | number>
  values?: unknown[]
  valueType?: { _zod?: { def: ZodDef } }
}

const MAX_DEPTH = 3

function describe(schema: { _zod?: { def: ZodDef } } | undefined, depth: number): string {
  const def = schema?._zod?.def
  if (!def) return 'unknown'
  if (depth > MAX_DEPTH) return '…'
  switch (def.type) {
    case 'object': {
      const fields = Object.entries(def.shape ?? {}).map(([name, field]) => {
        const fieldType = field._zod?.def.type
        const optional = fieldType === 'optional' || fieldType === 'default'
        return `${name}${optional ? '?' : ''}: ${describe(optional ? field._zod?.def.innerType : field, depth + 1)}`
      })
      return fields.length ? `{ ${fields.join(', ')} }` : '{}'
    }
    case 'array':
      return `${describe(def.element, depth + 1)}[]`
    case 'optional':
      return `${describe(def.innerType, depth)} | undefined`
    case 'nullable':
      return `${describe(def.innerType, depth)} | null`
    case 'default':
    case 'readonly':
    case 'catch':
    case 'nonoptional':
      return describe(def.innerType, depth)
    case 'enum':
      return Object.values(def.entries ?? {})
        .map((value) => JSON.stringify(value))
        .join(' | ')
    case 'literal':
      return (def.values ?? []).map((value) => JSON.stringify(value)).join(' | ')
    case 'union':
      return (def.options ?? []).map((option) => describe(option, depth + 1)).join(' | ')
    case 'record':
      return `Record<string, ${describe(def.valueType, depth + 1)}>`
    default:
      return def.type
  }
}

/** Summary of the merged inputs of a procedure (`.input()` may be chained); `-` when it takes none. */
export function describeInput(procedure: { _def: { inputs?: unknown[] } }): string {
  const inputs = procedure._def.inputs ?? []
  if (inputs.length === 0) return '-'
  return inputs.map((input) => describe(input as { _zod?: { def: ZodDef } }, 0)).join(' & ')
}
