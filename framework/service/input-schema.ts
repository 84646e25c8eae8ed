import { z } from 'zod'

/** A JSON Schema document (2020-12, as zod 4 writes it, without `$schema`). */
export type JsonSchema = Record<string, unknown>

/**
 * A zod schema as JSON Schema (zod 4's conversion; `io` picks the input or output side). A schema
 * zod cannot convert is left open (`{}`), described as such: the gateway's OpenAPI document and
 * the build manifest (the dev dashboard's call form) both show these.
 */
export function toJsonSchema(parser: unknown, io: 'input' | 'output'): JsonSchema {
  try {
    const { $schema: _dialect, ...schema } = z.toJSONSchema(parser as z.ZodType, {
      io,
      unrepresentable: 'any',
    }) as JsonSchema
    return schema
  } catch {
    return { description: 'a schema zod cannot convert to JSON Schema' }
  }
}

/** A procedure's input (its `.input()` parsers, merged with allOf); undefined when it takes none. */
export function inputJsonSchema(inputs: readonly unknown[]): JsonSchema | undefined {
  if (inputs.length === 0) return undefined
  const schemas = inputs.map((parser) => toJsonSchema(parser, 'input'))
  return schemas.length === 1 ? schemas[0] : { allOf: schemas }
}
