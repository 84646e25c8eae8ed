import { FrameworkError } from '../internal/errors.js'
import type { CallsOf } from '../service/balancer-spec.js'
import type { Caller } from '../service/context.js'
import type { AnyServiceDefinition, DepOptions, DepsClients } from '../service/define-service.js'
import { assertDepOptions } from '../service/dep-options.js'
import { assertRole } from '../service/role.js'

/** `gateway.ts` (or `defineGateway`) cannot be used: thrown at load, so the command exits 2. */
export class GatewayConfigError extends FrameworkError {
  static override readonly codes = ['FRAMEWORK_ERR_BAD_GATEWAY'] as const

  constructor(message: string) {
    super('FRAMEWORK_ERR_BAD_GATEWAY', message)
    this.name = 'GatewayConfigError'
  }
}

/** What `authenticate` and a rate limit `key` see of a request. */
export interface GatewayRequest {
  readonly method: string
  /** The path and query as sent. */
  readonly url: string
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  /** The peer's address (put the gateway behind a proxy you trust to read X-Forwarded-For). */
  readonly ip: string
  /** The calls the request makes, `<role>.<path>` each (several for a tRPC batch). */
  readonly calls: readonly string[]
}

export interface CorsOptions {
  /** Origins allowed to call from a browser (`https://shop.example`), or `'*'` for any. */
  origins: readonly string[] | '*'
  /** Allow cookies and `Authorization` from those origins (not with `'*'`). Default false. */
  credentials?: boolean
  /** How long a browser may cache a preflight answer, seconds. Default 600. */
  maxAgeSeconds?: number
  /** Request headers browsers may send besides `content-type`, `authorization`, `x-request-id`. */
  allowHeaders?: readonly string[]
}

export interface RateLimitOptions {
  /** Calls a client may make at once (the bucket's size). */
  burst: number
  /** Calls per second the bucket refills with. */
  perSecond: number
  /** The client a request counts against; default its peer address. */
  key?: (request: GatewayRequest) => string
}

export interface GatewayLimits {
  /** Largest request body, bytes (413 over it). Default 1 MiB. */
  maxBodyBytes?: number
  /** Most calls in one tRPC batch request (413 over it). Default 64. */
  maxBatch?: number
  /** Largest request head (request line and headers), bytes (431 over it). Default 16 KiB. */
  maxHeaderBytes?: number
}

/** The edge's settings, the default export of an optional `gateway.ts` at the app root. */
export interface GatewayOptions<
  TServices extends Record<string, AnyServiceDefinition> = Record<string, AnyServiceDefinition>,
> {
  /**
   * Who is calling: return the principal (a JSON object, `ctx.caller` in every service the call
   * reaches), or undefined for an anonymous call; throw to refuse the request with 401.
   */
  authenticate?: (request: GatewayRequest) => Caller | undefined | Promise<Caller | undefined>
  /** Browsers from other origins may call only when allowed here; default none. */
  cors?: CorsOptions
  /** A token bucket per client; 429 with `Retry-After` when it is empty. Default none. */
  rateLimit?: RateLimitOptions
  limits?: GatewayLimits
  /** How the gateway calls each role (balancer, deadline), as `deps` in a service. */
  deps?: { [K in keyof TServices]?: DepOptions<CallsOf<DepsClients<TServices>[K]>> }
}

/** A checked gateway configuration, every default filled in. */
export interface GatewayDefinition {
  readonly kind: 'framework.gateway'
  readonly authenticate: GatewayOptions['authenticate']
  readonly cors:
    | {
        origins: ReadonlySet<string> | '*'
        credentials: boolean
        maxAgeSeconds: number
        allowHeaders: ReadonlySet<string>
      }
    | undefined
  readonly rateLimit: Required<Omit<RateLimitOptions, 'key'>> & Pick<RateLimitOptions, 'key'>
  readonly limits: Required<GatewayLimits>
  readonly deps: Readonly<Record<string, DepOptions>>
}

/** Headers a browser may always send to the gateway. */
const BASE_ALLOW_HEADERS = ['content-type', 'authorization', 'x-request-id', 'trpc-accept']

/**
 * The gateway's settings for `gateway.ts` at the app root, checked at load:
 * `export default defineGateway<{ api: typeof api }>({ authenticate, cors, rateLimit })`.
 */
export function defineGateway<
  TServices extends Record<string, AnyServiceDefinition> = Record<string, AnyServiceDefinition>,
>(options: GatewayOptions<TServices> = {}): GatewayDefinition {
  const { authenticate, cors, rateLimit, limits = {} } = options
  if (authenticate !== undefined && typeof authenticate !== 'function') {
    throw new GatewayConfigError('gateway authenticate must be a function (request) => principal')
  }
  const deps: Record<string, DepOptions> = {}
  for (const [role, depOptions] of Object.entries(options.deps ?? {})) {
    assertRole(role, 'defineGateway({ deps })')
    const dep = (depOptions ?? {}) as DepOptions
    try {
      assertDepOptions(dep, `gateway deps.${role}`)
    } catch (err) {
      throw new GatewayConfigError((err as Error).message)
    }
    if (dep.timeoutMs !== undefined) whole(`deps.${role}.timeoutMs`, dep.timeoutMs, 1, 3_600_000)
    deps[role] = { ...dep }
  }
  return Object.freeze({
    kind: 'framework.gateway' as const,
    authenticate,
    cors: cors === undefined ? undefined : checkCors(cors),
    rateLimit: rateLimit === undefined ? UNLIMITED : checkRateLimit(rateLimit),
    limits: Object.freeze({
      maxBodyBytes: whole('limits.maxBodyBytes', limits.maxBodyBytes ?? 1024 * 1024, 1024, 2 ** 30),
      maxBatch: whole('limits.maxBatch', limits.maxBatch ?? 64, 1, 10_000),
      maxHeaderBytes: whole(
        'limits.maxHeaderBytes',
        limits.maxHeaderBytes ?? 16_384,
        1024,
        2 ** 20,
      ),
    }),
    deps: Object.freeze(deps),
  })
}

/** No rate limit: a bucket that never empties. */
const UNLIMITED = Object.freeze({ burst: Number.POSITIVE_INFINITY, perSecond: 0 })

export function isGatewayDefinition(value: unknown): value is GatewayDefinition {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { kind?: unknown }).kind === 'framework.gateway'
  )
}

function whole(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new GatewayConfigError(
      `gateway ${name} ${JSON.stringify(value)} is invalid: use a whole number ${min}-${max}`,
    )
  }
  return value
}

function checkCors(cors: CorsOptions): NonNullable<GatewayDefinition['cors']> {
  const credentials = cors.credentials ?? false
  let origins: ReadonlySet<string> | '*'
  if (cors.origins === '*') {
    if (credentials) {
      throw new GatewayConfigError(
        "gateway cors: origins '*' cannot go with credentials: true (browsers refuse it); list the origins",
      )
    }
    origins = '*'
  } else if (Array.isArray(cors.origins)) {
    for (const origin of cors.origins) {
      let parsed: URL | undefined
      try {
        parsed = new URL(origin)
      } catch {}
      if (!parsed || parsed.origin !== origin) {
        throw new GatewayConfigError(
          `gateway cors origin ${JSON.stringify(origin)} is invalid: use scheme://host[:port] with no path or trailing slash, e.g. https://shop.example`,
        )
      }
    }
    origins = new Set(cors.origins)
  } else {
    throw new GatewayConfigError(
      "gateway cors.origins must be a list of origins (['https://shop.example']) or '*'",
    )
  }
  const allowHeaders = new Set(BASE_ALLOW_HEADERS)
  for (const header of cors.allowHeaders ?? []) {
    if (typeof header !== 'string' || !/^[A-Za-z0-9-]{1,64}$/.test(header)) {
      throw new GatewayConfigError(
        `gateway cors.allowHeaders: ${JSON.stringify(header)} is not a header name`,
      )
    }
    allowHeaders.add(header.toLowerCase())
  }
  return Object.freeze({
    origins,
    credentials,
    maxAgeSeconds: whole('cors.maxAgeSeconds', cors.maxAgeSeconds ?? 600, 0, 86_400),
    allowHeaders,
  })
}

function checkRateLimit(rateLimit: RateLimitOptions): GatewayDefinition['rateLimit'] {
  const { burst, perSecond, key } = rateLimit
  whole('rateLimit.burst', burst, 1, 1_000_000)
  if (typeof perSecond !== 'number' || !(perSecond > 0) || perSecond > 1_000_000) {
    throw new GatewayConfigError(
      `gateway rateLimit.perSecond ${JSON.stringify(perSecond)} is invalid: use a number of calls per second > 0`,
    )
  }
  if (key !== undefined && typeof key !== 'function') {
    throw new GatewayConfigError('gateway rateLimit.key must be a function (request) => string')
  }
  return Object.freeze({ burst, perSecond, key })
}
