import { METRICS_PATH } from '../telemetry/metrics-endpoint.js'

/** What a request to the gateway asks for, from its URL alone. */
export type GatewayRoute =
  /** tRPC's HTTP protocol: `/trpc/<role>.<path>`, or comma-joined names with `?batch=1`. */
  | { kind: 'trpc'; names: string[]; batch: boolean; params: URLSearchParams }
  /** Plain JSON: `/api/<role>/<path segments>`. */
  | { kind: 'api'; name: string; params: URLSearchParams }
  | { kind: 'openapi' }
  | { kind: 'healthz' }
  | { kind: 'readyz' }
  | { kind: 'metrics' }
  /** Not a gateway path, or a name no procedure can have: 404. */
  | { kind: 'unknown'; name: string | undefined }
  /** A path that cannot be read (bad percent-encoding): 400. */
  | { kind: 'malformed'; message: string }

/** A route that makes calls. */
export type CallsRoute = Extract<GatewayRoute, { kind: 'trpc' | 'api' }>

export const TRPC_PREFIX = '/trpc/'
export const API_PREFIX = '/api/'
export const OPENAPI_PATH = '/openapi.json'

/** A path segment of `/api/…` after decoding: a role or a procedure key, never `.`, `/` or `%`. */
const SEGMENT = /^[A-Za-z0-9_$-]+$/

/**
 * Reads the route of a request URL (path and query as sent). Names are exact: no `..`, no
 * normalising; a name that is not `<role>.<path>` of an exposed procedure is looked up, not found
 * and answered 404 like any other.
 */
export function parseRoute(url: string): GatewayRoute {
  const queryAt = url.indexOf('?')
  const pathname = queryAt === -1 ? url : url.slice(0, queryAt)
  const params = () => new URLSearchParams(queryAt === -1 ? '' : url.slice(queryAt + 1))
  if (pathname.startsWith(TRPC_PREFIX)) {
    const raw = decode(pathname.slice(TRPC_PREFIX.length))
    if (raw === undefined) return malformed(pathname)
    const query = params()
    const batch = query.get('batch') === '1' || query.get('batch') === 'true'
    return { kind: 'trpc', names: batch ? raw.split(',') : [raw], batch, params: query }
  }
  if (pathname.startsWith(API_PREFIX)) {
    const segments = pathname.slice(API_PREFIX.length).split('/').map(decode)
    if (segments.some((segment) => segment === undefined)) return malformed(pathname)
    const name = (segments as string[]).join('.')
    if (segments.length < 2 || !(segments as string[]).every((s) => SEGMENT.test(s))) {
      return { kind: 'unknown', name }
    }
    return { kind: 'api', name, params: params() }
  }
  if (pathname === OPENAPI_PATH) return { kind: 'openapi' }
  if (pathname === '/healthz') return { kind: 'healthz' }
  if (pathname === '/readyz') return { kind: 'readyz' }
  if (pathname === METRICS_PATH) return { kind: 'metrics' }
  return { kind: 'unknown', name: undefined }
}

function decode(text: string): string | undefined {
  if (!text.includes('%')) return text
  try {
    return decodeURIComponent(text)
  } catch {
    return undefined
  }
}

function malformed(pathname: string): GatewayRoute {
  return {
    kind: 'malformed',
    message: `the path ${JSON.stringify(pathname.slice(0, 200))} has a bad percent-encoding`,
  }
}
