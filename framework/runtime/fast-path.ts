import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import { encodeAnswer } from '../protocol/answer.js'
import { parseBatch } from '../protocol/batch.js'
import { TOKEN_HEADER } from '../protocol/call-token.js'
import { deadlineFrom } from '../protocol/headers.js'
import { metadataFromHeaders } from '../protocol/metadata.js'
import { OVERLOADED_STATUS } from '../protocol/overload.js'
import { BATCH_NAME, parseRpcUrl, queryInput } from '../protocol/paths.js'
import type { CallAuth, CallerCheck } from './call-auth.js'
import { encodeOutcome, type Invoker, type Outcome } from './invoker.js'
import type { InflightLimit } from './overload.js'

export interface FastPathOptions {
  invoker: Invoker
  log: Logger
  maxBodyBytes: number
  maxBatchSize: number
  /** The instance's in-flight limit: calls over it are answered 503 before their body is read. */
  limit?: InflightLimit
  /** Call tokens: a request without a valid one is answered 401 before its body is read. */
  auth?: CallAuth
}

/**
 * The lean handler for the framework's own clients: plain `node:http`, no fetch `Request`/
 * `Response`, no express. It speaks tRPC's protocol for single calls (`GET /_rpc/<path>?input=`,
 * `POST /_rpc/<path>`; same bodies, error shapes and statuses as tRPC) and a batch form
 * (`POST /_rpc/_batch`) whose answers stream back as newline-delimited JSON `[index, status, body]`
 * in completion order, so a slow procedure does not hold back the rest of its batch.
 */
export function createFastPathHandler(options: FastPathOptions) {
  const { invoker, log, maxBodyBytes, maxBatchSize, limit, auth } = options

  /** Sheds the request if the instance is at its limit (its body, if any, is left unread). */
  function shed(req: IncomingMessage, res: ServerResponse): boolean {
    if (!limit?.sheds('rpc')) return false
    req.resume()
    limit.answer(res)
    return true
  }

  /** The request's caller; null (and a 401 sent) when its token is refused. */
  async function callerOf(
    req: IncomingMessage,
    res: ServerResponse,
    path?: string,
  ): Promise<CallerCheck | null> {
    if (!auth?.required) return undefined
    let caller = auth.check(req.headers[TOKEN_HEADER])
    if (caller instanceof Promise) caller = await caller
    if (typeof caller === 'string') {
      req.resume()
      send(res, invoker.refuseToken(caller, path), path)
      return null
    }
    return caller
  }

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
    // At the limit already: the whole batch is shed unread (each of its calls sees the 503).
    // Shedding comes before the token check: the cheapest answer, and it tells only "busy".
    if (shed(req, res)) return
    const caller = auth?.required ? await callerOf(req, res) : undefined
    if (caller === null) return
    const text = await readBody(req, res)
    if (text === undefined) return
    const items = parseBatch(text)
    if (typeof items === 'string') return badRequest(res, 'BAD_REQUEST', items)
    if (items.length > maxBatchSize) {
      return badRequest(
        res,
        'PAYLOAD_TOO_LARGE',
        `batch of ${items.length} calls is over this service's maxBatchSize ${maxBatchSize}; send smaller batches`,
      )
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson' })
    let pending = items.length
    items.forEach(([path, kind, input, deadlineMs, metadata], index) => {
      // Each call is admitted on its own: a batch may fill the instance up to its limit, no more.
      if (limit?.sheds('rpc')) {
        res.write(encodeAnswer(index, OVERLOADED_STATUS, limit.answerJson))
        if (--pending === 0) res.end()
        return
      }
      // (A throw would become this item's 500, not the whole batch's end.)
      void new Promise<Outcome>((resolve) =>
        resolve(invoker.call(path, kind, input, deadlineMs ?? undefined, index, metadata, caller)),
      )
        .catch((err: unknown) => invoker.fail(err, path))
        .then((outcome) => {
          const { status, text } = encodeOutcome(invoker, outcome, path)
          res.write(encodeAnswer(index, status, text))
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
    if (shed(req, res)) return
    const caller = auth?.required ? await callerOf(req, res, path) : undefined
    if (caller === null) return
    // Checked again after a token check (it may have waited on a signature): calls may have
    // started meanwhile. (A POST is checked again after its body anyway.)
    if (caller !== undefined && req.method === 'GET' && shed(req, res)) return
    const deadlineMs = deadlineFrom(req.headers)
    const metadata = metadataFromHeaders(req.headers)
    if (typeof metadata === 'string') {
      req.resume()
      return badRequest(res, 'BAD_REQUEST', metadata, path)
    }
    if (req.method === 'GET') {
      let input: unknown
      const raw = queryInput(query)
      if (raw !== null) {
        try {
          input = JSON.parse(raw)
        } catch (err) {
          return badRequest(res, 'BAD_REQUEST', notJson(err), path)
        }
      }
      return send(
        res,
        await invoker.call(path, 'query', input, deadlineMs, 0, metadata, caller),
        path,
      )
    }
    if (req.method === 'POST') {
      const text = await readBody(req, res)
      if (text === undefined) return
      // Checked again: calls may have started while this body was being read.
      if (shed(req, res)) return
      let input: unknown
      if (text !== '') {
        try {
          input = JSON.parse(text)
        } catch (err) {
          return badRequest(res, 'BAD_REQUEST', notJson(err), path)
        }
      }
      return send(
        res,
        await invoker.call(path, 'mutation', input, deadlineMs, 0, metadata, caller),
        path,
      )
    }
    send(
      res,
      invoker.refuse('METHOD_NOT_SUPPORTED', 'use GET for queries and POST for mutations', path),
    )
  }

  return (req: IncomingMessage, res: ServerResponse): void => {
    const parsed = parseRpcUrl(req.url ?? '')
    if (typeof parsed === 'string') {
      badRequest(res, 'BAD_REQUEST', parsed)
      return
    }
    const { path, query } = parsed
    const work =
      path === BATCH_NAME && req.method === 'POST'
        ? handleBatch(req, res)
        : handleSingle(req, res, path, query)
    work.catch((err: unknown) => {
      log.error({ err }, 'fast path failed')
      if (!res.headersSent) send(res, invoker.fail(err, path))
      else res.destroy()
    })
  }
}

function tooLarge(maxBodyBytes: number): string {
  return `request body is over ${maxBodyBytes} bytes; send less, or raise FRAMEWORK_MAX_BODY_BYTES on the service`
}

function notJson(err: unknown): string {
  return `request input is not valid JSON (${(err as Error).message}); send a JSON body or ?input=<url-encoded JSON>`
}
