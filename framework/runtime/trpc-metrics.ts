import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TRPCError } from '@trpc/server'
import { getHTTPStatusCodeFromError } from '@trpc/server/http'
import type { ServerMetrics } from '../telemetry/server-metrics.js'

/**
 * Server-call metrics for tRPC's adapter at `/trpc`, which runs procedures without the invoker.
 * A request names its procedures in its path (several for a batch); tRPC reports each failed one
 * to `onError`, so a procedure of the request is counted with its error's status, else 200.
 */
export function trpcCallMetrics(metrics: ServerMetrics) {
  const failures = new WeakMap<IncomingMessage, { path: string | undefined; status: number }[]>()
  return {
    /** Called as the request starts, with its procedure paths; counts them when it closes. */
    track(req: IncomingMessage, res: ServerResponse, paths: readonly string[]): void {
      const started = performance.now()
      const fallbackKind = req.method === 'POST' ? 'mutation' : 'query'
      res.once('close', () => {
        const seconds = (performance.now() - started) / 1000
        const failed = failures.get(req) ?? []
        for (const path of paths) {
          const index = failed.findIndex((failure) => failure.path === path)
          const status = index === -1 ? 200 : failed.splice(index, 1)[0]!.status
          metrics.observe(path, metrics.kindOf(path) ?? fallbackKind, status, seconds)
        }
      })
    },
    /** tRPC's `onError`: remembers the status of a failed procedure of `req`. */
    failed(req: IncomingMessage, path: string | undefined, error: TRPCError): void {
      const list = failures.get(req) ?? []
      failures.set(req, list)
      list.push({ path, status: getHTTPStatusCodeFromError(error) })
    },
  }
}
