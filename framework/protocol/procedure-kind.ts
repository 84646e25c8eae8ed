/** What a procedure is on the wire: a query (safe to retry, GET) or a mutation (POST). */
export const PROCEDURE_KINDS = ['query', 'mutation'] as const
export type ProcedureKind = (typeof PROCEDURE_KINDS)[number]

export function isProcedureKind(value: unknown): value is ProcedureKind {
  return value === 'query' || value === 'mutation'
}
