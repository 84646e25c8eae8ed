import { TOKEN_HEADER } from '../protocol/call-token.js'
import { DEADLINE_HEADER } from '../protocol/headers.js'
import { singleCallPath } from '../protocol/paths.js'
import type { PendingCall } from './pending-call.js'
import type { RequestPool } from './request-pool.js'
import { inputJson } from './stream-calls.js'
import { connectionError } from './transport-error.js'

/** Where requests to one instance go: its keep-alive pool and the path its URL carries. */
export interface RequestTarget {
  url: string
  pool: RequestPool
  basePath: string
}

/** One call as a plain tRPC-protocol request (`GET …/_rpc/<path>?input=` or `POST …/_rpc/<path>`). */
export async function sendSingle(target: RequestTarget, call: PendingCall): Promise<void> {
  // No input travels as no input (not `null`, which a schema may refuse).
  const json = call.input === undefined ? undefined : inputJson(call)
  if (call.input !== undefined && json === undefined) return
  // Metadata entries are header names already (protocol/metadata.ts).
  const headers: Record<string, string> = {
    ...call.metadata,
    [DEADLINE_HEADER]: String(call.deadlineMs),
  }
  if (call.kind === 'mutation') headers['content-type'] = 'application/json'
  if (call.token !== undefined) headers[TOKEN_HEADER] = call.token
  const abort = new AbortController()
  call.abandoned = () => abort.abort()
  call.sentAt = performance.now()
  try {
    const pool = await target.pool.get()
    const response = await pool.request({
      method: call.kind === 'query' ? 'GET' : 'POST',
      path: `${target.basePath}${singleCallPath(call.path, call.kind, json)}`,
      headers,
      body: call.kind === 'mutation' ? (json ?? '') : undefined,
      signal: abort.signal,
    })
    const text = await response.body.text()
    call.resolve({ status: response.statusCode, body: parseJson(text) })
  } catch (err) {
    call.reject(connectionError(target.url, err))
  }
}

/** The JSON in `text`, or undefined when it is not JSON. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}
