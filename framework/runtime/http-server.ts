import type { IncomingMessage } from 'node:http'
import type { AnyRouter } from '@trpc/server'
import { createExpressMiddleware } from '@trpc/server/adapters/express'
import express, { type Express } from 'express'
import type { Logger } from 'pino'
import { TRPC_PREFIX } from '../protocol/paths.js'
import type { ServiceContext } from '../service/context.js'
import type { LoadSampler } from './load.js'
import type { ServedCalls } from './served-calls.js'

export interface HttpAppOptions {
  router: AnyRouter
  /** Builds each request's `ctx`; throws a TRPCError for a request it refuses (bad metadata). */
  context: (req: IncomingMessage) => ServiceContext<unknown>
  log: Logger
  load: LoadSampler
  /** Counts the calls served at `/trpc`, per procedure. */
  served: ServedCalls
  maxBodyBytes: number
  /** `/readyz` answers 200 only while this is true (registered in the phone book). */
  isReady: () => boolean
}

/**
 * The instance's HTTP surface: tRPC at `/trpc` (tRPC maps bad input to 400, unknown procedures
 * to 404, oversized bodies to 413, malformed JSON to 400), `/healthz` (alive) and `/readyz`
 * (registered). The user's own express routes can be added to the returned app.
 */
export function createHttpApp(options: HttpAppOptions): Express {
  const { router, context, log, load, served, maxBodyBytes, isReady } = options
  const app = express()
  app.disable('x-powered-by')
  app.use((_req, res, next) => {
    load.inflight++
    res.once('close', () => {
      load.inflight--
    })
    next()
  })
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'alive' })
  })
  app.get('/readyz', (_req, res) => {
    const ready = isReady()
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not registered' })
  })
  app.use(TRPC_PREFIX, (req, res, next) => {
    // tRPC names a request's procedures in its path, comma-separated for a batch.
    const paths = procedurePaths(req.path)
    res.once('close', () => {
      for (const path of paths) served.count(path)
    })
    next()
  })
  app.use(
    TRPC_PREFIX,
    createExpressMiddleware({
      router,
      maxBodySize: maxBodyBytes,
      createContext: ({ req }) => context(req),
      onError: ({ error, path, type }) => {
        if (error.code === 'INTERNAL_SERVER_ERROR') {
          log.error({ err: error.cause ?? error, path, type }, 'procedure failed')
        }
      },
    }),
  )
  return app
}

/** The procedure paths of a `/trpc` request path (`/a.b,c`); none when it is not decodable. */
function procedurePaths(path: string): string[] {
  try {
    return decodeURIComponent(path.slice(1)).split(',')
  } catch {
    return []
  }
}
