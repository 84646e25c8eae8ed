import { randomUUID } from 'node:crypto'
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import type { Dependencies } from '../client/dependencies.js'
import type { FrameworkErrorCode } from '../internal/errors.js'
import {
  CALLER_KEY,
  type CallMetadata,
  encodeCaller,
  isRequestId,
  REQUEST_ID_KEY,
  withTraceContext,
} from '../protocol/metadata.js'
import { describeInputIssues } from '../service/errors.js'
import { type Scrape, serveMetrics } from '../telemetry/metrics-endpoint.js'
import type { ServerMetrics } from '../telemetry/server-metrics.js'
import { type CallAnswer, callFailure, refusal, success, WholeRefusal } from './answers.js'
import { readCallInputs } from './call-inputs.js'
import { corsHeaders, preflightHeaders } from './cors.js'
import type { GatewayDefinition, GatewayRequest } from './define-gateway.js'
import type { ExposedProcedure, ExposedProcedures } from './exposed-procedures.js'
import { inputIssues } from './input-check.js'
import { TokenBuckets } from './rate-limit.js'
import { type CallsRoute, parseRoute } from './routes.js'

/** Response headers, lower-case names. */
type Headers = Record<string, string>

export interface GatewayHandlerOptions {
  procedures: ExposedProcedures
  definition: GatewayDefinition
  /** Clients of every exposing role: the same resolvers, balancers and retries as `ctx.deps`. */
  dependencies: Dependencies
  /** The OpenAPI document, as served. */
  openapiJson: string
  log: Logger
  /** `/metrics` serves `scrape`; each call is counted in `server` by its name (`role.path`). */
  metrics?: { server: ServerMetrics; scrape: Scrape }
}

const JSON_TYPE = 'application/json'

/**
 * The gateway's request handler: `/trpc` (tRPC's HTTP protocol, batches included), `/api`
 * (plain JSON), `/openapi.json`, `/healthz`, `/readyz`. Every call it forwards goes through the
 * clients `ctx.deps` uses; everything refused is answered in tRPC's error shape and forwarded
 * nowhere. It keeps no state between requests but the rate limit's buckets.
 */
export class GatewayHandler {
  /** Requests being answered. */
  inflight = 0
  /** Draining (SIGTERM): requests still served, each answer closes its connection. */
  draining = false
  readonly #options: GatewayHandlerOptions
  readonly #buckets: TokenBuckets

  constructor(options: GatewayHandlerOptions) {
    this.#options = options
    const { burst, perSecond } = options.definition.rateLimit
    this.#buckets = new TokenBuckets(burst, perSecond)
  }

  /** Every exposing role has been listed in the phone book, and not draining. */
  get ready(): boolean {
    if (this.draining) return false
    for (const resolver of this.#options.dependencies.resolvers.values()) {
      if (!resolver.listed) return false
    }
    return true
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.inflight++
    res.once('close', () => {
      this.inflight--
    })
    this.#serve(req, res).catch((err: unknown) => {
      this.#options.log.error({ err }, 'gateway request failed')
      if (!res.headersSent) {
        this.#send(res, { 'x-request-id': randomUUID() }, internalError())
      } else res.destroy()
    })
  }

  /**
   * The HTTP parser refused a request (a head over the limit: 431; anything unreadable: 400):
   * answered in tRPC's error shape too, then the connection is closed.
   */
  readonly clientError = (err: Error & { code?: string }, socket: Duplex): void => {
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy()
      return
    }
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW'
    const answer = tooLarge
      ? refusal(
          'BAD_REQUEST',
          `the request line and headers are over the gateway's limit of ${this.#options.definition.limits.maxHeaderBytes} bytes; send less (a long ?input= goes in a POST body instead)`,
          undefined,
          { status: 431 },
        )
      : refusal('BAD_REQUEST', 'the request is not readable HTTP/1.1', undefined)
    const text = JSON.stringify(answer.body)
    socket.end(
      `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status]}\r\nconnection: close\r\ncontent-type: ${JSON_TYPE}\r\ncontent-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
    )
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { definition } = this.#options
    const sent = req.headers[REQUEST_ID_KEY]
    const requestId = typeof sent === 'string' && isRequestId(sent) ? sent : randomUUID()
    const headers: Headers = { 'x-request-id': requestId }
    if (this.draining) headers.connection = 'close'
    if (sent !== undefined && requestId !== sent) {
      return this.#send(
        res,
        headers,
        refusal(
          'BAD_REQUEST',
          `header ${REQUEST_ID_KEY} is invalid: send 1-128 visible ASCII characters (a UUID), or none and the gateway makes one`,
          undefined,
        ),
      )
    }
    if (req.method === 'OPTIONS') {
      const preflight = preflightHeaders(definition.cors, req.headers)
      if (preflight === 'refused') return this.#send(res, headers, originRefused(req))
      res.writeHead(204, { ...headers, ...preflight, 'content-length': '0' })
      res.end()
      return
    }
    const cors = corsHeaders(definition.cors, req.headers)
    if (cors === 'refused') return this.#send(res, headers, originRefused(req))
    if (cors) Object.assign(headers, cors)

    const route = parseRoute(req.url ?? '/')
    switch (route.kind) {
      case 'healthz':
        return this.#sendJson(res, headers, 200, '{"status":"alive"}')
      case 'readyz':
        return this.ready
          ? this.#sendJson(res, headers, 200, '{"status":"ready"}')
          : this.#sendJson(res, headers, 503, '{"status":"not ready"}')
      case 'openapi':
        return this.#sendJson(res, headers, 200, this.#options.openapiJson)
      case 'metrics':
        if (!this.#options.metrics) return this.#send(res, headers, notExposed(undefined))
        return serveMetrics(req, res, this.#options.metrics.scrape, this.#options.log)
      case 'malformed':
        return this.#send(res, headers, refusal('BAD_REQUEST', route.message, undefined))
      case 'unknown':
        return this.#send(res, headers, notExposed(route.name))
      default:
        return this.#serveCalls(req, res, route, headers, requestId)
    }
  }

  async #serveCalls(
    req: IncomingMessage,
    res: ServerResponse,
    route: CallsRoute,
    headers: Headers,
    requestId: string,
  ): Promise<void> {
    const { procedures, definition } = this.#options
    const names = route.kind === 'trpc' ? route.names : [route.name]
    const found = names.map((name) => procedures.get(name))
    const started = performance.now()
    const answerAll = (answers: CallAnswer[]) => {
      this.#measure(req, names, found, answers, started)
      return this.#answer(res, headers, route, answers)
    }
    try {
      if (req.method !== 'GET' && req.method !== 'POST') {
        throw new WholeRefusal(
          refusal('METHOD_NOT_SUPPORTED', 'use GET for queries and POST for mutations', undefined),
          { allow: 'GET, POST' },
        )
      }
      if (names.length > definition.limits.maxBatch) {
        throw new WholeRefusal(
          refusal(
            'PAYLOAD_TOO_LARGE',
            `a batch of ${names.length} calls is over the gateway's limit of ${definition.limits.maxBatch}; send smaller batches`,
            undefined,
          ),
        )
      }
      if (req.headers['trpc-accept'] === 'application/jsonl') {
        throw new WholeRefusal(
          refusal(
            'BAD_REQUEST',
            'this gateway does not stream answers: use httpBatchLink or httpLink, not httpBatchStreamLink',
            undefined,
          ),
        )
      }
      // Nothing here to forward: answer without asking anyone (authenticate, the rate limit).
      if (found.every((procedure) => procedure === undefined)) {
        req.resume()
        return answerAll(names.map((name) => notExposed(name)))
      }
      const view = () => this.#requestView(req, names)
      this.#limitRate(view, names.length)
      const inputs = await readCallInputs(req, route, names.length, definition.limits.maxBodyBytes)
      const metadata = withTraceContext(await this.#metadata(view, requestId), req.headers)
      const posted = req.method === 'POST'
      const callOne = (procedure: ExposedProcedure | undefined, index: number) =>
        procedure === undefined
          ? notExposed(names[index]!)
          : this.#call(procedure, posted, route.kind, inputs[index], metadata)
      // One call (the common case) needs no Promise.all.
      const answers =
        found.length === 1 ? [await callOne(found[0], 0)] : await Promise.all(found.map(callOne))
      return answerAll(answers)
    } catch (err) {
      if (!(err instanceof WholeRefusal)) throw err
      if (err.close) headers.connection = 'close'
      Object.assign(headers, err.headers)
      return this.#send(res, headers, err.answer)
    }
  }

  /** One call: method and input checked at the edge, then forwarded through the role's client. */
  async #call(
    procedure: ExposedProcedure,
    posted: boolean,
    form: 'trpc' | 'api',
    input: unknown,
    metadata: CallMetadata,
  ): Promise<CallAnswer> {
    const { name } = procedure
    // tRPC: queries GET, mutations POST. Plain JSON: queries also POST (inputs too long for a URL).
    if (procedure.kind === 'mutation' ? !posted : posted && form === 'trpc') {
      return refusal(
        'METHOD_NOT_SUPPORTED',
        `${name} is a ${procedure.kind}: send it with ${procedure.kind === 'query' ? 'GET' : 'POST'}`,
        name,
      )
    }
    let issues: Awaited<ReturnType<typeof inputIssues>>
    try {
      issues = await inputIssues(procedure.inputs, input)
    } catch (err) {
      // A schema that throws (a refinement's bug) throws in the service too: it answers that.
      this.#options.log.warn({ err, call: name }, 'input schema threw at the edge')
    }
    if (issues) return refusal('BAD_REQUEST', describeInputIssues(issues), name, { issues })
    const { dependencies } = this.#options
    const client = dependencies.clients.get(procedure.role)
    if (!client) return notExposed(name)
    try {
      const call = client.call(procedure.path, input, undefined, undefined, metadata)
      return success(await dependencies.measured(procedure.role, procedure.path, call))
    } catch (err) {
      return callFailure(err, name, procedure.role, this.#options.log)
    }
  }

  /** Counts each call of a request once answered (refusals of the whole request are not calls). */
  #measure(
    req: IncomingMessage,
    names: readonly string[],
    found: readonly (ExposedProcedure | undefined)[],
    answers: readonly CallAnswer[],
    started: number,
  ): void {
    const metrics = this.#options.metrics?.server
    if (!metrics) return
    const seconds = (performance.now() - started) / 1000
    const sentKind = req.method === 'POST' ? 'mutation' : 'query'
    answers.forEach((answer, i) => {
      metrics.observe(names[i]!, found[i]?.kind ?? sentKind, answer.status, seconds)
    })
  }

  #requestView(req: IncomingMessage, names: readonly string[]): GatewayRequest {
    return {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
      ip: req.socket.remoteAddress ?? '',
      calls: names,
    }
  }

  /** Takes a token per call from the client's bucket, or refuses with 429 and Retry-After. */
  #limitRate(view: () => GatewayRequest, calls: number): void {
    const { rateLimit } = this.#options.definition
    if (rateLimit.burst === Number.POSITIVE_INFINITY) return
    const request = view()
    const key = rateLimit.key ? rateLimit.key(request) : request.ip
    const waitMs = this.#buckets.take(key, calls, Date.now())
    if (waitMs === 0) return
    const seconds = Math.max(1, Math.ceil(waitMs / 1000))
    throw new WholeRefusal(
      refusal(
        'TOO_MANY_REQUESTS',
        `rate limit: at most ${rateLimit.burst} calls at once and ${rateLimit.perSecond}/s per client; retry after ${seconds} s`,
        undefined,
        { frameworkCode: 'FRAMEWORK_ERR_RATE_LIMITED' },
      ),
      { 'retry-after': String(seconds) },
    )
  }

  /** What the calls carry: the request id, and the caller `authenticate` names (401 if it throws). */
  async #metadata(view: () => GatewayRequest, requestId: string): Promise<CallMetadata> {
    const { authenticate } = this.#options.definition
    if (!authenticate) return { [REQUEST_ID_KEY]: requestId }
    let caller: unknown
    try {
      caller = await authenticate(view())
    } catch (err) {
      throw new WholeRefusal(
        refusal(
          'UNAUTHORIZED',
          err instanceof Error && err.message ? err.message : 'not authenticated',
          undefined,
          { frameworkCode: 'FRAMEWORK_ERR_UNAUTHENTICATED' },
        ),
      )
    }
    if (caller === undefined) return { [REQUEST_ID_KEY]: requestId }
    const encoded = encodeCaller(caller)
    if (typeof encoded !== 'string') {
      this.#options.log.error(
        { problem: encoded.error },
        'gateway authenticate returned a principal that cannot travel as ctx.caller',
      )
      throw new WholeRefusal(internalError())
    }
    return { [REQUEST_ID_KEY]: requestId, [CALLER_KEY]: encoded }
  }

  #answer(res: ServerResponse, headers: Headers, route: CallsRoute, answers: CallAnswer[]): void {
    if (route.kind === 'trpc' && route.batch) {
      const status = answers.every((answer) => answer.status === answers[0]!.status)
        ? answers[0]!.status
        : 207
      this.#sendJson(res, headers, status, JSON.stringify(answers.map((answer) => answer.body)))
    } else if (route.kind === 'api' && 'result' in answers[0]!.body) {
      this.#sendJson(res, headers, 200, JSON.stringify(answers[0]!.body.result.data ?? null))
    } else {
      this.#send(res, headers, answers[0]!)
    }
  }

  #send(res: ServerResponse, headers: Headers, answer: CallAnswer): void {
    const { body } = answer
    // A success is a template around its data: no wrapper objects to walk.
    const text =
      'result' in body && body.result.data !== undefined
        ? `{"result":{"data":${JSON.stringify(body.result.data)}}}`
        : JSON.stringify(body)
    this.#sendJson(res, headers, answer.status, text)
  }

  #sendJson(res: ServerResponse, headers: Headers, status: number, text: string): void {
    res.writeHead(status, {
      ...headers,
      'content-type': JSON_TYPE,
      'content-length': String(Buffer.byteLength(text)),
    })
    res.end(text)
  }
}

function notExposed(name: string | undefined): CallAnswer {
  const shown = name === undefined ? 'this path' : JSON.stringify(name.slice(0, 200))
  return refusal(
    'NOT_FOUND',
    `${shown} is not an exposed procedure: use /trpc/<role>.<path> or /api/<role>/<path> of one (GET /openapi.json lists them)`,
    undefined,
    { frameworkCode: 'FRAMEWORK_ERR_NOT_EXPOSED' satisfies FrameworkErrorCode },
  )
}

function originRefused(req: IncomingMessage): CallAnswer {
  return refusal(
    'FORBIDDEN',
    `origin ${JSON.stringify(String(req.headers.origin ?? '').slice(0, 200))} is not allowed: add it to cors.origins in gateway.ts`,
    undefined,
    { frameworkCode: 'FRAMEWORK_ERR_ORIGIN_REFUSED' },
  )
}

function internalError(): CallAnswer {
  return refusal('INTERNAL_SERVER_ERROR', 'the gateway failed on this request', undefined)
}
