import type { IncomingMessage, ServerResponse } from 'node:http'
import { type AnyRouter, getTRPCErrorFromUnknown, getTRPCErrorShape, TRPCError } from '@trpc/server'
import { getHTTPStatusCodeFromError } from '@trpc/server/http'
import type { Logger } from 'pino'
import { DEADLINE_HEADER } from '../client/http-transport.js'
import type { ServiceContext } from '../service/context.js'
import type { LoadSampler } from './load.js'

/** Where the lean handler listens; tRPC's standard adapter stays at `/trpc`. */
export const FAST_PATH_PREFIX = '/_rpc/'
/** Path of a batch request: `POST /_rpc/_batch` with `[[path, kind, input, deadlineMs], …]`. */
export const BATCH_PATH = '_batch'
export const DEFAULT_MAX_BATCH_SIZE = 128

/** One call of a batch on the wire: procedure path, kind, input, remaining deadline (ms). */
export type BatchItem = [
  path: string,
  kind: 'query' | 'mutation',
  input: unknown,
  deadlineMs: number,
]

type Procedure = ((opts: {
  ctx: unknown
  path: string
  type: 'query' | 'mutation'
  getRawInput: () => Promise<unknown>
  signal: AbortSignal | undefined
  batchIndex: number
}) => Promise<unknown>) & { _def: { type: string } }

export interface InvokerOptions {
  router: AnyRouter
  /** Builds each call's `ctx`; `deadlineMs` is the caller's remaining time, if it sent one. */
  context: (deadlineMs: number | undefined) => ServiceContext<unknown>
  load: LoadSampler
  log: Logger
}

/** What a call came to: an HTTP status and a tRPC response body (`{ result }` or `{ error }`). */
export interface Outcome {
  status: number
  body: unknown
}

/** Runs procedures by path the way tRPC's adapters do, for the framework's lean transports. */
export interface Invoker {
  call(
    path: string,
    kind: 'query' | 'mutation',
    input: unknown,
    deadlineMs: number | undefined,
    batchIndex: number,
  ): Promise<Outcome>
  /** A tRPC error body (shape, status) for a request refused before any procedure ran. */
  refuse(
    code: 'BAD_REQUEST' | 'PAYLOAD_TOO_LARGE' | 'METHOD_NOT_SUPPORTED' | 'SERVICE_UNAVAILABLE',
    message: string,
    path?: string,
  ): Outcome
  /** An unexpected failure as a tRPC error body (logged). */
  fail(cause: unknown, path: string | undefined): Outcome
}

/**
 * Procedures run through tRPC's own procedure call: same validation, middleware and `ctx`, same
 * error shapes and statuses as tRPC's adapters.
 */
export function createInvoker(options: InvokerOptions): Invoker {
  const { router, context, load, log } = options
  const procedures = router._def.procedures as Record<string, Procedure | undefined>
  const config = router._def._config

  function errorOutcome(
    cause: unknown,
    path: string | undefined,
    type: 'query' | 'mutation' | 'unknown',
    input: unknown,
    ctx: unknown,
  ): Outcome {
    const error = getTRPCErrorFromUnknown(cause)
    if (error.code === 'INTERNAL_SERVER_ERROR') {
      log.error({ err: error.cause ?? error, path, type }, 'procedure failed')
    }
    return {
      status: getHTTPStatusCodeFromError(error),
      body: { error: getTRPCErrorShape({ config, error, type, path, input, ctx }) },
    }
  }

  return {
    async call(path, kind, input, deadlineMs, batchIndex) {
      const procedure = procedures[path]
      let ctx: unknown
      load.inflight++
      try {
        if (!procedure || procedure._def.type !== kind) {
          const exists = procedure !== undefined
          throw new TRPCError({
            code: exists ? 'METHOD_NOT_SUPPORTED' : 'NOT_FOUND',
            message: exists
              ? `'${path}' is a ${procedure._def.type}, not a ${kind}`
              : `No procedure found on path "${path}"`,
          })
        }
        ctx = context(deadlineMs)
        const data = await procedure({
          ctx,
          path,
          type: kind,
          getRawInput: async () => input,
          signal: undefined,
          batchIndex,
        })
        return { status: 200, body: { result: { data } } }
      } catch (cause) {
        return errorOutcome(cause, path, kind, input, ctx)
      } finally {
        load.inflight--
      }
    },
    refuse: (code, message, path) =>
      errorOutcome(new TRPCError({ code, message }), path, 'unknown', undefined, undefined),
    fail: (cause, path) => errorOutcome(cause, path, 'unknown', undefined, undefined),
  }
}

/** `outcome.body` as JSON; a body JSON cannot encode (a BigInt, a cycle) becomes the 500 it is. */
export function encodeOutcome(
  invoker: Invoker,
  outcome: Outcome,
  path?: string,
): { status: number; text: string } {
  try {
    return { status: outcome.status, text: JSON.stringify(outcome.body) }
  } catch (err) {
    return { status: 500, text: JSON.stringify(invoker.fail(err, path).body) }
  }
}

export interface FastPathOptions {
  invoker: Invoker
  log: Logger
  maxBodyBytes: number
  maxBatchSize: number
}

/**
 * The lean handler for the framework's own clients: plain `node:http`, no fetch `Request`/
 * `Response`, no express. It speaks tRPC's protocol for single calls (`GET /_rpc/<path>?input=`,
 * `POST /_rpc/<path>`; same bodies, error shapes and statuses as tRPC) and a batch form
 * (`POST /_rpc/_batch`) whose answers stream back as newline-delimited JSON `[index, status, body]`
 * in completion order, so a slow procedure does not hold back the rest of its batch.
 */
export function createFastPathHandler(options: FastPathOptions) {
  const { invoker, log, maxBodyBytes, maxBatchSize } = options

  function send(res: ServerResponse, outcome: Outcome, path?: string): void {
    const { status, text } = encodeOutcome(invoker, outcome, path)
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    })
    res.end(text)
  }

  function badRequest(
    res: ServerResponse,
    code: 'BAD_REQUEST' | 'PAYLOAD_TOO_LARGE',
    message: string,
    path?: string,
  ) {
    send(res, invoker.refuse(code, message, path))
  }

  /** Reads the body up to the limit; undefined (and a 413 sent) when it is larger. */
  function readBody(req: IncomingMessage, res: ServerResponse): Promise<string | undefined> {
    return new Promise((resolve, reject) => {
      const declared = Number(req.headers['content-length'])
      if (declared > maxBodyBytes) {
        badRequest(res, 'PAYLOAD_TOO_LARGE', tooLarge(maxBodyBytes))
        req.resume()
        return resolve(undefined)
      }
      const chunks: Buffer[] = []
      let size = 0
      req.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > maxBodyBytes) {
          req.removeAllListeners('data')
          req.resume()
          badRequest(res, 'PAYLOAD_TOO_LARGE', tooLarge(maxBodyBytes))
          resolve(undefined)
          return
        }
        chunks.push(chunk)
      })
      req.on('end', () =>
        resolve(size > maxBodyBytes ? undefined : Buffer.concat(chunks).toString('utf8')),
      )
      req.on('error', reject)
    })
  }

  async function handleBatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const text = await readBody(req, res)
    if (text === undefined) return
    let items: unknown
    try {
      items = JSON.parse(text)
    } catch (err) {
      return badRequest(
        res,
        'BAD_REQUEST',
        `batch body is not valid JSON (${(err as Error).message})`,
      )
    }
    if (!Array.isArray(items) || items.length === 0 || !items.every(isBatchItem)) {
      return badRequest(
        res,
        'BAD_REQUEST',
        'a batch body is a non-empty JSON array of [path, "query"|"mutation", input, deadlineMs]',
      )
    }
    if (items.length > maxBatchSize) {
      return badRequest(
        res,
        'PAYLOAD_TOO_LARGE',
        `batch of ${items.length} calls is over this service's maxBatchSize ${maxBatchSize}; send smaller batches`,
      )
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson' })
    let pending = items.length
    items.forEach(([path, kind, input, deadlineMs], index) => {
      void invoker.call(path, kind, input, deadlineMs ?? undefined, index).then((outcome) => {
        const { status, text } = encodeOutcome(invoker, outcome, path)
        res.write(`[${index},${status},${text}]\n`)
        if (--pending === 0) res.end()
      })
    })
  }

  async function handleSingle(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    query: string,
  ): Promise<void> {
    const deadlineMs = deadlineFrom(req)
    if (req.method === 'GET') {
      let input: unknown
      const raw = new URLSearchParams(query).get('input')
      if (raw !== null) {
        try {
          input = JSON.parse(raw)
        } catch (err) {
          return badRequest(res, 'BAD_REQUEST', notJson(err), path)
        }
      }
      return send(res, await invoker.call(path, 'query', input, deadlineMs, 0), path)
    }
    if (req.method === 'POST') {
      const text = await readBody(req, res)
      if (text === undefined) return
      let input: unknown
      if (text !== '') {
        try {
          input = JSON.parse(text)
        } catch (err) {
          return badRequest(res, 'BAD_REQUEST', notJson(err), path)
        }
      }
      return send(res, await invoker.call(path, 'mutation', input, deadlineMs, 0), path)
    }
    send(
      res,
      invoker.refuse('METHOD_NOT_SUPPORTED', 'use GET for queries and POST for mutations', path),
    )
  }

  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? ''
    const queryAt = url.indexOf('?')
    const path = decodeURIComponent(
      url.slice(FAST_PATH_PREFIX.length, queryAt === -1 ? undefined : queryAt),
    )
    const query = queryAt === -1 ? '' : url.slice(queryAt + 1)
    const work =
      path === BATCH_PATH && req.method === 'POST'
        ? handleBatch(req, res)
        : handleSingle(req, res, path, query)
    work.catch((err: unknown) => {
      log.error({ err }, 'fast path failed')
      if (!res.headersSent) send(res, invoker.fail(err, path))
      else res.destroy()
    })
  }
}

function isBatchItem(value: unknown): value is BatchItem {
  return (
    Array.isArray(value) &&
    typeof value[0] === 'string' &&
    (value[1] === 'query' || value[1] === 'mutation') &&
    (value[3] === undefined || value[3] === null || typeof value[3] === 'number')
  )
}

/** The caller's remaining deadline (ms) from its `x-deadline-ms` header, if valid. */
export function deadlineFrom(req: IncomingMessage): number | undefined {
  const header = req.headers[DEADLINE_HEADER]
  if (typeof header !== 'string') return undefined
  const ms = Number(header)
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined
}

function tooLarge(maxBodyBytes: number): string {
  return `request body is over ${maxBodyBytes} bytes; send less, or raise FRAMEWORK_MAX_BODY_BYTES on the service`
}

function notJson(err: unknown): string {
  return `request input is not valid JSON (${(err as Error).message}); send a JSON body or ?input=<url-encoded JSON>`
}
