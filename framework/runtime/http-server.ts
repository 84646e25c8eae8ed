import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AnyRouter } from '@trpc/server'
import type { Express } from 'express'
import type { Logger } from 'pino'
import { metadataFromHeaders, NO_METADATA } from '../protocol/metadata.js'
import { TRPC_PREFIX } from '../protocol/paths.js'
import type { ServiceContext } from '../service/context.js'
import { isMetricsUrl, type Scrape, serveMetrics } from '../telemetry/metrics-endpoint.js'
import type { ServerMetrics } from '../telemetry/server-metrics.js'
import { type ServedCallSpan, startServedCall } from '../telemetry/spans.js'
import type { Tracing } from '../telemetry/tracing-handle.js'
import type { LoadSampler } from './load.js'
import type { InflightLimit } from './overload.js'
import type { ServedCalls } from './served-calls.js'
import { trpcCallMetrics } from './trpc-metrics.js'

export interface HttpAppOptions {
  router: AnyRouter
  /**
   * Builds each request's `ctx` (`procedure`: its procedure paths, comma-separated; `span`: its
   * span when tracing is on); throws a TRPCError for a request it refuses (bad metadata).
   */
  context: (
    req: IncomingMessage,
    procedure: string,
    span?: ServedCallSpan,
  ) => ServiceContext<unknown> | Promise<ServiceContext<unknown>>
  log: Logger
  /** Counts the requests in flight (each /trpc request is one, a tRPC batch too). */
  load: LoadSampler
  /** The instance's in-flight limit: a /trpc request over it is answered 503 unread. */
  limit?: InflightLimit
  /** Counts the calls served at `/trpc`, per procedure. */
  served: ServedCalls
  maxBodyBytes: number
  /** `/readyz` answers 200 only while this is true (registered in the phone book). */
  isReady: () => boolean
  /** One SERVER span per `/trpc` request (a tRPC batch is one span), when tracing is on. */
  tracing?: Tracing
  /** `/metrics` serves this (Prometheus text); calls at `/trpc` are counted in `metrics`. */
  scrape?: Scrape
  metrics?: ServerMetrics
  /**
   * When set, `/metrics` answers only a request whose call token it accepts (a refusal message:
   * 401); `/healthz` and `/readyz` stay open whatever it says (probes carry no token).
   */
  metricsAuth?: (req: IncomingMessage) => string | undefined | Promise<string | undefined>
}

/** What the node:http server hands every request that is not the framework's own (`/_rpc`). */
export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void

function answerJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  })
  res.end(text)
}

/**
 * The instance's HTTP surface: `/healthz` (alive), `/readyz` (registered) and `/metrics`
 * (Prometheus), answered on
 * node:http, and tRPC's standard adapter at `/trpc` (tRPC maps bad input to 400, unknown
 * procedures to 404, oversized bodies to 413, malformed JSON to 400) on express, which is loaded
 * at the first request that needs it: the framework's clients use `/_rpc`, and an instance that
 * no other tRPC client calls never holds express in memory.
 */
export function createHttpApp(options: HttpAppOptions): RequestListener {
  const { log, isReady, scrape, load, limit, metricsAuth } = options
  let app: Promise<Express> | undefined
  return (req, res) => {
    if (scrape && isMetricsUrl(req.url)) {
      if (!metricsAuth) return serveMetrics(req, res, scrape, log)
      void Promise.resolve(metricsAuth(req)).then((refusal) => {
        if (refusal === undefined) serveMetrics(req, res, scrape, log)
        else answerJson(res, 401, { error: refusal })
      })
      return
    }
    const path = req.url?.split('?', 1)[0]
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (path === '/healthz') return answerJson(res, 200, { status: 'alive' })
      if (path === '/readyz') {
        const ready = isReady()
        return answerJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not registered' })
      }
    }
    if (limit && path !== undefined && isTrpcPath(path) && limit.sheds('trpc')) {
      req.resume()
      return limit.answer(res, trpcShedBody(req.url ?? '', path, limit.answerJson))
    }
    // Counted from here, not once express has loaded: the limit must see every request it admitted.
    load.inflight++
    res.once('close', () => {
      load.inflight--
    })
    app ??= expressApp(options)
    app.then(
      (handle) => handle(req, res),
      (err: unknown) => {
        log.error({ err }, 'cannot load the /trpc adapter (express)')
        answerJson(res, 500, { error: 'internal error' })
      },
    )
  }
}

async function expressApp(options: HttpAppOptions): Promise<Express> {
  const { router, context, log, served, maxBodyBytes, tracing } = options
  const spans = new WeakMap<IncomingMessage, ServedCallSpan>()
  const measured = options.metrics && trpcCallMetrics(options.metrics)
  const [{ default: express }, { createExpressMiddleware }] = await Promise.all([
    import('express'),
    import('@trpc/server/adapters/express'),
  ])
  const app = express()
  app.disable('x-powered-by')
  app.use(TRPC_PREFIX, (req, res, next) => {
    // tRPC names a request's procedures in its path, comma-separated for a batch.
    const paths = procedurePaths(req.path)
    const span = startServedCall(
      tracing,
      paths.join(','),
      requestKind(req.method),
      traceMetadata(req),
    )
    if (span) spans.set(req, span)
    measured?.track(req, res, paths)
    res.once('close', () => {
      for (const path of paths) served.count(path)
      span?.end(res.statusCode)
    })
    next()
  })
  app.use(
    TRPC_PREFIX,
    createExpressMiddleware({
      router,
      maxBodySize: maxBodyBytes,
      createContext: ({ req }) => context(req, procedurePaths(req.path).join(','), spans.get(req)),
      onError: ({ error, path, type, req }) => {
        measured?.failed(req, path, error)
        if (error.code === 'INTERNAL_SERVER_ERROR') {
          log.error({ err: error.cause ?? error, path, type }, 'procedure failed')
        }
      },
    }),
  )
  return app
}

function isTrpcPath(path: string): boolean {
  return path === TRPC_PREFIX || path.startsWith(`${TRPC_PREFIX}/`)
}

/**
 * The shed answer as tRPC's client expects it: one error body, or for a batch (`?batch=1`) an
 * array with one per procedure of the batch.
 */
function trpcShedBody(url: string, path: string, answerJson: string): string {
  const query = url.indexOf('?')
  if (query === -1 || !new URLSearchParams(url.slice(query + 1)).has('batch')) return answerJson
  const count = Math.max(1, procedurePaths(path.slice(TRPC_PREFIX.length)).length)
  return `[${Array.from({ length: count }, () => answerJson).join(',')}]`
}

/** tRPC's HTTP protocol: queries are GETs, mutations POSTs. */
function requestKind(method: string): string {
  return method === 'POST' ? 'mutation' : 'query'
}

/** A request's metadata for its span (a request refused for bad metadata still gets one). */
function traceMetadata(req: IncomingMessage) {
  const metadata = metadataFromHeaders(req.headers)
  return typeof metadata === 'string' ? NO_METADATA : metadata
}

/** The procedure paths of a `/trpc` request path (`/a.b,c`); none when it is not decodable. */
function procedurePaths(path: string): string[] {
  try {
    return decodeURIComponent(path.slice(1)).split(',')
  } catch {
    return []
  }
}
