import type { IncomingHttpHeaders } from 'node:http'
import type { GatewayDefinition } from './define-gateway.js'

type Cors = GatewayDefinition['cors']

/** Response headers a browser may read besides the simple ones. */
const EXPOSE_HEADERS = 'x-request-id, retry-after'

/**
 * The CORS answer to a request: no headers for a request without `Origin` (not a browser, or a
 * same-origin GET) or from the gateway's own origin; the allow headers for an allowed origin;
 * `'refused'` for any other origin, which is then answered 403 and forwarded nowhere.
 */
export function corsHeaders(
  cors: Cors,
  headers: IncomingHttpHeaders,
): Record<string, string> | undefined | 'refused' {
  const origin = headers.origin
  if (origin === undefined) return undefined
  if (!allowed(cors, origin)) return sameOrigin(origin, headers.host) ? undefined : 'refused'
  const answer: Record<string, string> = {
    'access-control-allow-origin': cors?.origins === '*' ? '*' : origin,
    'access-control-expose-headers': EXPOSE_HEADERS,
    vary: 'Origin',
  }
  if (cors?.credentials) answer['access-control-allow-credentials'] = 'true'
  return answer
}

/**
 * The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`): the allow headers
 * when the origin, the method and every requested header are allowed, else `'refused'`.
 */
export function preflightHeaders(
  cors: Cors,
  headers: IncomingHttpHeaders,
): Record<string, string> | 'refused' {
  const base = corsHeaders(cors, headers)
  if (base === 'refused' || base === undefined || cors === undefined) return 'refused'
  const method = String(headers['access-control-request-method'] ?? '')
  if (method !== 'GET' && method !== 'POST') return 'refused'
  const requested = String(headers['access-control-request-headers'] ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== '')
  if (!requested.every((name) => cors.allowHeaders.has(name))) return 'refused'
  return {
    ...base,
    'access-control-allow-methods': 'GET, POST',
    'access-control-allow-headers': requested.join(', '),
    'access-control-max-age': String(cors.maxAgeSeconds),
  }
}

function allowed(cors: Cors, origin: string): boolean {
  if (cors === undefined) return false
  return cors.origins === '*' || cors.origins.has(origin)
}

/** A page served from the gateway's own host (behind a proxy that serves the app too). */
function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false
  try {
    return new URL(origin).host === host
  } catch {
    return false
  }
}
