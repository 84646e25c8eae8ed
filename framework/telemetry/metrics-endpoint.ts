import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'

/** The path Prometheus scrapes on every instance and on the gateway. */
export const METRICS_PATH = '/metrics'

/** What the endpoint serves: the exposition text and its content type. */
export type Scrape = () => Promise<{ contentType: string; text: string }>

/**
 * Answers `GET /metrics` (a query string is ignored; HEAD gets the headers only). Any other
 * method is 405 with `Allow: GET, HEAD`. A failing collection is a 500, logged, never a crash.
 */
export function serveMetrics(
  req: IncomingMessage,
  res: ServerResponse,
  scrape: Scrape,
  log: Logger,
): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' })
    res.end('method not allowed: /metrics answers GET and HEAD\n')
    return
  }
  scrape().then(
    ({ contentType, text }) => {
      res.writeHead(200, {
        'content-type': contentType,
        'content-length': Buffer.byteLength(text),
      })
      res.end(req.method === 'HEAD' ? undefined : text)
    },
    (err: unknown) => {
      log.error({ err }, 'collecting metrics failed')
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
      res.end('collecting metrics failed; see the service log\n')
    },
  )
}

/** True when `url` (a request's, with any query string) is the metrics path. */
export function isMetricsUrl(url: string | undefined): boolean {
  if (url === undefined) return false
  const end = url.indexOf('?')
  return (end === -1 ? url : url.slice(0, end)) === METRICS_PATH
}
