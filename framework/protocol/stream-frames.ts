import { type Answer, encodeAnswer } from './answer.js'
import { type CallMetadata, NO_METADATA, parseMetadata } from './metadata.js'
import { isProcedureKind, type ProcedureKind } from './procedure-kind.js'

/**
 * The RPC stream's frames, one JSON array per line, many calls in flight on one connection:
 *
 *   client → service   [id, path, "query"|"mutation", input, deadlineMs, metadata?]   a call (id > 0)
 *   service → client   [id, status, body]        its answer (answer.ts), in completion order
 *   service → client   [0, 0, "goaway"]          draining: send nothing more, close when answered
 *   service → client   [0, status, body]         a frame whose id cannot be read: refused, closed
 *
 * A frame that is bad but whose id can be read (not JSON, wrong shape, over the body limit) is
 * answered 400/413 on that id and the connection goes on.
 *
 * `metadata` (metadata.ts) is appended only when the call has some, so a call without it is the
 * same bytes as in the first version; a first-version service reads the first five elements and
 * ignores a sixth.
 */
export type CallFrame = [
  id: number,
  path: string,
  kind: ProcedureKind,
  input: unknown,
  deadlineMs: number | null | undefined,
  metadata: CallMetadata,
]

/** Sent by a draining service on id 0. */
export const GOAWAY = 'goaway'
export const GOAWAY_FRAME = `[0,0,"${GOAWAY}"]\n`

/**
 * A call frame, its input already JSON (`null` for none): a template, as this is the hot path.
 * A deadline that is not finite travels as `null` (none); `metadataJson` (encodeMetadata) only
 * when there is some.
 */
export function encodeCallFrame(
  id: number,
  path: string,
  kind: ProcedureKind,
  inputJson: string,
  deadlineMs: number,
  metadataJson?: string,
): string {
  const deadline = Number.isFinite(deadlineMs) ? deadlineMs : 'null'
  const metadata = metadataJson === undefined ? '' : `,${metadataJson}`
  return `[${id},${JSON.stringify(path)},"${kind}",${inputJson},${deadline}${metadata}]\n`
}

/**
 * A call's input as frame JSON: `null` for none; undefined when JSON has no form for it (a
 * function or a symbol). Throws what JSON.stringify throws (a BigInt, a cycle).
 */
export function encodeFrameInput(input: unknown): string | undefined {
  return input === undefined ? 'null' : JSON.stringify(input)
}

/** A call frame (without its newline), its metadata checked, or what is wrong with it. */
export function parseCallFrame(line: string): CallFrame | string {
  let frame: unknown
  try {
    frame = JSON.parse(line)
  } catch (err) {
    return `RPC stream frame is not valid JSON (${(err as Error).message})`
  }
  if (!isCallFrame(frame)) {
    return 'an RPC stream frame is [id > 0, path, "query"|"mutation", input, deadlineMs, metadata?]'
  }
  if (frame.length > 5) {
    const metadata = parseMetadata(frame[5])
    if (typeof metadata === 'string') return metadata
    frame[5] = metadata
  } else {
    frame[5] = NO_METADATA
  }
  return frame
}

function isCallFrame(value: unknown): value is unknown[] & CallFrame {
  return (
    Array.isArray(value) &&
    Number.isSafeInteger(value[0]) &&
    (value[0] as number) > 0 &&
    typeof value[1] === 'string' &&
    isProcedureKind(value[2]) &&
    (value[4] === undefined || value[4] === null || typeof value[4] === 'number')
  )
}

/** The id a frame starts with (`[<id>,`), when it can be read without parsing the frame. */
export function frameId(text: string): number | undefined {
  const match = /^\s*\[\s*(\d{1,15})\s*,/.exec(text)
  const id = match ? Number(match[1]) : 0
  return id > 0 ? id : undefined
}

/** The answer to a frame whose id cannot be read: sent on id 0, then the service closes. */
export function encodeRefusal(status: number, bodyJson: string): string {
  return encodeAnswer(0, status, bodyJson)
}

/** What a frame from the service is: the answer to call `id`, a goaway or a refusal (id 0). */
export function serviceFrameKind(frame: Answer): 'answer' | 'goaway' | 'refusal' {
  if (frame[0] !== 0) return 'answer'
  return frame[2] === GOAWAY ? 'goaway' : 'refusal'
}
