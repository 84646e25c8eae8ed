import { type CallMetadata, hasMetadata, parseMetadata } from './metadata.js'
import { isProcedureKind, type ProcedureKind } from './procedure-kind.js'

/**
 * A batch request, `POST /_rpc/_batch`: a JSON array of calls, answered `200` with one answer line
 * per call (answer.ts, its index in the batch as the id) in completion order. A batch refused as a
 * whole (malformed, too large) is answered like a single call: a status and a tRPC error body.
 * A call's metadata (metadata.ts) is a fifth element, present only when it has some.
 */
export type BatchItem = [
  path: string,
  kind: ProcedureKind,
  input: unknown,
  deadlineMs: number | null | undefined,
  metadata: CallMetadata,
]

/** What a batch carries of each call. */
export interface BatchCall {
  path: string
  kind: ProcedureKind
  input: unknown
  deadlineMs: number
  metadata?: CallMetadata | undefined
}

/** Most calls in one batch a service accepts by default (`FRAMEWORK_MAX_BATCH`). */
export const DEFAULT_MAX_BATCH_SIZE = 128

/** The body of a batch request. Throws what JSON.stringify throws (a BigInt, a cycle). */
export function encodeBatch(calls: readonly BatchCall[]): string {
  return JSON.stringify(
    calls.map((call) => {
      const item: unknown[] = [call.path, call.kind, call.input, call.deadlineMs]
      if (hasMetadata(call.metadata)) item.push(call.metadata)
      return item
    }),
  )
}

/** The calls of a batch request body, or what is wrong with it. */
export function parseBatch(text: string): BatchItem[] | string {
  let items: unknown
  try {
    items = JSON.parse(text)
  } catch (err) {
    return `batch body is not valid JSON (${(err as Error).message})`
  }
  if (!Array.isArray(items) || items.length === 0 || !items.every(isBatchItem)) {
    return 'a batch body is a non-empty JSON array of [path, "query"|"mutation", input, deadlineMs, metadata?]'
  }
  for (const [index, item] of items.entries()) {
    const metadata = parseMetadata(item[4])
    if (typeof metadata === 'string') return `batch call ${index}: ${metadata}`
    item[4] = metadata
  }
  return items
}

function isBatchItem(value: unknown): value is unknown[] & BatchItem {
  return (
    Array.isArray(value) &&
    typeof value[0] === 'string' &&
    isProcedureKind(value[1]) &&
    (value[3] === undefined || value[3] === null || typeof value[3] === 'number')
  )
}
