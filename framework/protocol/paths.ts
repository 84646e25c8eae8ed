import type { ProcedureKind } from './procedure-kind.js'

/** tRPC's standard adapter, for any tRPC client. */
export const TRPC_PREFIX = '/trpc'
/** The framework's own transports: `/_rpc/<procedure path>`, the batch and the stream below. */
export const RPC_PREFIX = '/_rpc/'
/** The name under RPC_PREFIX that is the batch request, not a procedure. */
export const BATCH_NAME = '_batch'
/** `POST /_rpc/_batch`: see batch.ts. */
export const BATCH_PATH = `${RPC_PREFIX}${BATCH_NAME}`
/** `GET /_rpc/_stream` upgraded to the RPC stream: see stream-handshake.ts. */
export const STREAM_PATH = `${RPC_PREFIX}_stream`

/**
 * The path and query of one call as a request, tRPC's single-call protocol: a query is
 * `GET /_rpc/<path>?input=<URL-encoded JSON>`, a mutation `POST /_rpc/<path>` with the JSON body.
 */
export function singleCallPath(
  path: string,
  kind: ProcedureKind,
  inputJson: string | undefined,
): string {
  const url = `${RPC_PREFIX}${path}`
  return kind === 'query' && inputJson !== undefined
    ? `${url}?input=${encodeURIComponent(inputJson)}`
    : url
}

/**
 * The procedure path (URL-decoded) and the query string of a URL under RPC_PREFIX; a string
 * saying what is wrong when the path's percent-encoding is bad (`%E0`, `%ZZ`).
 */
export function parseRpcUrl(url: string): { path: string; query: string } | string {
  const queryAt = url.indexOf('?')
  const raw = url.slice(RPC_PREFIX.length, queryAt === -1 ? undefined : queryAt)
  let path: string
  try {
    path = decodeURIComponent(raw)
  } catch {
    return `the procedure path ${JSON.stringify(raw.slice(0, 200))} has a bad percent-encoding; encode it with encodeURIComponent`
  }
  return { path, query: queryAt === -1 ? '' : url.slice(queryAt + 1) }
}

/** The raw JSON of a query's `?input=`, or null when it has none. */
export function queryInput(query: string): string | null {
  return new URLSearchParams(query).get('input')
}
