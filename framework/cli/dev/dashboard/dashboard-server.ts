import { existsSync, readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { type Logger, pino } from 'pino'
import type { EtcdAccess } from '../../../config/etcd-access.js'
import { createEtcdClient } from '../../../registry/etcd-client.js'
import type { DevCollector } from '../../../telemetry/dev-collector.js'
import type { RoleManifest } from '../../build/manifest.js'
import { callThroughDiscovery, parseCallTarget } from '../../call.js'
import { CliError } from '../../cli-error.js'
import { SseHub } from './sse.js'
import { Topology } from './topology.js'

/**
 * The page's files: plain HTML, CSS and JS (no build step), kept with the CLI's templates so that
 * `npm run build:package` (which copies templates/ into dist/) ships them. From
 * framework/cli/dev/dashboard/ and dist/cli/dev/dashboard/ alike: ../../templates/dashboard.
 */
export const DASHBOARD_ASSETS_DIR = join(import.meta.dirname, '..', '..', 'templates', 'dashboard')
const ASSETS: Record<string, string> = {
  '/': 'index.html',
  '/app.js': 'app.js',
  '/style.css': 'style.css',
}
const CONTENT_TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
}
/** Largest call form body taken (a procedure's input as JSON). */
const MAX_CALL_BODY_BYTES = 1 * 2 ** 20
const CALL_TIMEOUT_MS = 10_000
/** New traces are announced at most this often (a busy app exports many batches a second). */
const TRACES_THROTTLE_MS = 300

export interface DashboardOptions {
  etcdEndpoints: string[]
  /** TLS material and etcd user for the phone book; undefined for a plain etcd. */
  etcdAccess?: EtcdAccess | undefined
  namespace: string
  collector: DevCollector
  /** The build manifest's roles: declared deps (edges) and input schemas (the call form). */
  roles?: readonly RoleManifest[]
  /** Default 0: a free port, on 127.0.0.1. */
  port?: number
  scrapeMs?: number
  log?: Logger
}

/** One procedure for the call form. */
export interface ProcedureView {
  name: string
  role: string
  path: string
  kind: string
  /** One line (`{ key: string }`), '' when the build manifest does not know it. */
  input: string
  /** JSON Schema of the input; null when it takes none or is not known. */
  inputSchema: Record<string, unknown> | null
}

/**
 * The dashboard `framework dev` serves on loopback: the page, `GET /api/topology`,
 * `/api/traces[/<id>]`, `/api/procedures`, `POST /api/call`, and `GET /api/events` (SSE:
 * `topology` on every change, `traces` when new spans arrive).
 */
export class Dashboard {
  readonly #sse = new SseHub()
  readonly #assets = new Map<string, Buffer>()
  #tracesTimer: NodeJS.Timeout | undefined

  private constructor(
    readonly server: Server,
    private readonly topology: Topology,
    private readonly etcd: { close(): void },
    private readonly options: DashboardOptions,
    private readonly stopCollecting: () => void,
  ) {
    for (const file of Object.values(ASSETS)) {
      this.#assets.set(file, readFileSync(join(DASHBOARD_ASSETS_DIR, file)))
    }
  }

  /** `http://127.0.0.1:<port>/` */
  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`
  }

  /** Resolves once the phone book was listed (the topology is complete). */
  whenListed(timeoutMs: number): Promise<void> {
    return this.topology.whenListed(timeoutMs)
  }

  /** Event streams open now (tests: a page that went away holds none). */
  get streams(): number {
    return this.#sse.size
  }

  static async start(options: DashboardOptions): Promise<Dashboard> {
    for (const file of Object.values(ASSETS)) {
      if (!existsSync(join(DASHBOARD_ASSETS_DIR, file))) {
        throw new CliError(
          `the dashboard's page is missing (${join(DASHBOARD_ASSETS_DIR, file)}): reinstall the framework (npm run build:package copies templates/)`,
        )
      }
    }
    const log = options.log ?? pino({ level: 'warn' })
    const etcd = createEtcdClient(options.etcdEndpoints, options.etcdAccess)
    const deps = Object.fromEntries((options.roles ?? []).map((role) => [role.role, role.deps]))
    const topology = new Topology({
      etcd,
      namespace: options.namespace,
      log,
      deps,
      scrapeMs: options.scrapeMs,
    })
    let dashboard: Dashboard | undefined
    const server = createServer((req, res) => dashboard?.handle(req, res))
    const stopCollecting = options.collector.onSpans(() => dashboard?.tracesArrived())
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(options.port ?? 0, '127.0.0.1', () => resolve())
      })
    } catch (err) {
      stopCollecting()
      await topology.close()
      etcd.close()
      throw new CliError(
        `the dashboard cannot listen on 127.0.0.1:${options.port ?? 0} (${(err as Error).message})`,
      )
    }
    dashboard = new Dashboard(server, topology, etcd, options, stopCollecting)
    topology.onChange(() => dashboard?.topologyChanged())
    return dashboard
  }

  async close(): Promise<void> {
    clearTimeout(this.#tracesTimer)
    this.stopCollecting()
    this.#sse.close()
    this.server.closeAllConnections()
    await new Promise((resolve) => this.server.close(resolve))
    await this.topology.close()
    this.etcd.close()
  }

  private topologyChanged(): void {
    if (this.#sse.size > 0) this.#sse.send('topology', this.topology.view())
  }

  private tracesArrived(): void {
    if (this.#tracesTimer) return
    this.#tracesTimer = setTimeout(() => {
      this.#tracesTimer = undefined
      this.#sse.send('traces', this.options.collector.store.list())
    }, TRACES_THROTTLE_MS)
  }

  procedures(): ProcedureView[] {
    const manifest = new Map((this.options.roles ?? []).map((role) => [role.role, role]))
    return this.topology.procedures().map(({ role, path, kind }) => {
      const known = manifest.get(role)?.procedures[path]
      return {
        name: `${role}.${path}`,
        role,
        path,
        kind,
        input: known?.input ?? '',
        inputSchema: known?.inputSchema ?? null,
      }
    })
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    const asset = ASSETS[path]
    if (req.method === 'GET' && asset) {
      res.writeHead(200, {
        'content-type': CONTENT_TYPES[asset.split('.').pop()!] ?? 'application/octet-stream',
        'cache-control': 'no-store',
      })
      res.end(this.#assets.get(asset))
      return
    }
    if (req.method === 'GET' && path === '/api/events') {
      this.#sse.open(req, res, [
        ['topology', this.topology.view()],
        ['traces', this.options.collector.store.list()],
      ])
      return
    }
    if (req.method === 'GET' && path === '/api/topology') {
      json(res, 200, this.topology.view())
      return
    }
    if (req.method === 'GET' && path === '/api/procedures') {
      json(res, 200, this.procedures())
      return
    }
    if (req.method === 'GET' && path === '/api/traces') {
      json(res, 200, this.options.collector.store.list())
      return
    }
    if (req.method === 'GET' && path.startsWith('/api/traces/')) {
      const traceId = decodeURIComponent(path.slice('/api/traces/'.length))
      const spans = this.options.collector.store.get(traceId)
      if (spans) json(res, 200, spans)
      else json(res, 404, { error: `no trace ${traceId} (only the last ones are kept)` })
      return
    }
    if (path === '/api/call') {
      if (req.method !== 'POST') {
        json(res, 405, { error: 'POST {"target","input"}' })
        return
      }
      // Only the dashboard's own page may call: any other web page in the developer's browser
      // could post here (a text/plain form needs no preflight; DNS rebinding changes the Host).
      const refused = foreignCaller(req)
      if (refused) {
        json(res, 403, { error: refused })
        return
      }
      void this.call(req, res)
      return
    }
    json(res, 404, { error: `no such page: ${path}` })
  }

  /** The call form: `{ target: "cache.get", input }` through discovery, as `framework call` does. */
  private async call(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let text = ''
    let size = 0
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length
      if (size > MAX_CALL_BODY_BYTES) {
        res.setHeader('connection', 'close')
        json(res, 413, { error: `input over ${MAX_CALL_BODY_BYTES} bytes` })
        return
      }
      text += chunk.toString('utf8')
    }
    let body: { target?: unknown; input?: unknown }
    try {
      body = JSON.parse(text)
    } catch (err) {
      json(res, 400, { error: `the body is not JSON (${(err as Error).message})` })
      return
    }
    const started = performance.now()
    try {
      if (typeof body.target !== 'string') {
        throw new CliError(
          'target missing: { "target": "<role>.<procedure>", "input": … }',
          'FRAMEWORK_ERR_USAGE',
        )
      }
      const { role, path } = parseCallTarget(body.target)
      const result = await callThroughDiscovery(
        {
          etcdEndpoints: this.options.etcdEndpoints,
          etcdAccess: this.options.etcdAccess,
          namespace: this.options.namespace,
        },
        role,
        path,
        body.input,
        CALL_TIMEOUT_MS,
      )
      json(res, 200, { ok: true, result, ms: Math.round(performance.now() - started) })
    } catch (err) {
      const status = err instanceof CliError && err.code === 'FRAMEWORK_ERR_USAGE' ? 400 : 502
      json(res, status, { ok: false, error: (err as Error).message })
    }
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
  res.end(JSON.stringify(body))
}

/**
 * Why a call-form request is not the dashboard page's own (undefined when it is): it must be JSON
 * (so a browser sends a preflight first, which this server never approves), sent to 127.0.0.1 or
 * localhost, and from the dashboard's own origin when the browser names one.
 */
function foreignCaller(req: IncomingMessage): string | undefined {
  const type = req.headers['content-type']?.split(';', 1)[0]?.trim().toLowerCase()
  if (type !== 'application/json') return 'send the call as content-type: application/json'
  const host = req.headers.host ?? ''
  if (!/^(127\.0\.0\.1|localhost)(:\d+)?$/.test(host)) return `not served to host ${host}`
  const origin = req.headers.origin
  if (origin !== undefined && origin !== `http://${host}`)
    return `calls from ${origin} are not taken`
  return undefined
}
