import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Logger, pino } from 'pino'
import { Dependencies } from '../client/dependencies.js'
import type { TransportOptions } from '../client/http-transport.js'
import type { AppInfo } from '../config/app.js'
import { lifecycle } from '../internal/lifecycle-event.js'
import { sleep } from '../internal/timers.js'
import { createEtcdClient } from '../registry/etcd-client.js'
import { callTokensFor } from '../security/call-tokens.js'
import type { AnyServiceDefinition, DepOptions } from '../service/define-service.js'
import { InstanceMetrics } from '../telemetry/instance-metrics.js'
import { startTracing } from '../telemetry/tracing.js'
import type { GatewayConfig } from './config.js'
import { defineGateway, GatewayConfigError, type GatewayDefinition } from './define-gateway.js'
import { ExposedProcedures } from './exposed-procedures.js'
import { GatewayHandler } from './gateway-handler.js'
import { openApiDocument } from './openapi.js'

export interface StartGatewayOptions {
  /**
   * The app's service definitions (those exposing nothing are skipped). The gateway reads
   * exposure and input schemas from the same code the services run, not from the phone book:
   * inputs are checked at the edge with the services' own schemas (a wrong type is never
   * forwarded), the OpenAPI document comes from zod itself, and phone book records stay small
   * (they are rewritten at every load refresh) and in a format any language can write. The live
   * manifest in the phone book still decides whether an instance serves a path.
   */
  definitions: readonly AnyServiceDefinition[]
  /** `gateway.ts`'s default export; default: no authentication, CORS, or rate limit. */
  gateway?: GatewayDefinition
  config: GatewayConfig
  app: AppInfo
  /** Defaults to a pino logger on stdout at `config.logLevel`. */
  log?: Logger
  /** How calls travel (default: the RPC stream where the service speaks it). */
  transport?: TransportOptions
}

/** A running gateway. */
export interface RunningGateway {
  readonly url: string
  readonly port: number
  readonly server: Server
  readonly handler: GatewayHandler
  readonly dependencies: Dependencies
  readonly procedures: ExposedProcedures
  readonly log: Logger
  /** Graceful stop: stop accepting, answer the requests in progress, close. */
  stop(): Promise<void>
}

/**
 * Starts the edge gateway: an HTTP server in front of every service that exposes procedures,
 * routing each call by role through the same clients as `ctx.deps` (resolver, balancer, retries,
 * ejection, deadlines). It holds no list of URLs and registers nothing: run as many as you like
 * behind any load balancer.
 */
export async function startGateway(options: StartGatewayOptions): Promise<RunningGateway> {
  const { config, app } = options
  const gateway = options.gateway ?? defineGateway()
  const log = (options.log ?? pino({ level: config.logLevel })).child({ role: 'gateway' })
  const procedures = new ExposedProcedures(options.definitions)
  if (procedures.size === 0) {
    throw new GatewayConfigError(
      "no service exposes procedures: add expose: true (or a list of paths) to a service's defineService",
    )
  }
  for (const role of Object.keys(gateway.deps)) {
    if (!procedures.roles.includes(role)) {
      throw new GatewayConfigError(
        `gateway deps names '${role}', which exposes nothing (exposing: ${procedures.roles.join(', ')})`,
      )
    }
  }
  log.info(
    { ...lifecycle('starting'), namespace: config.namespace, etcd: config.etcdEndpoints },
    'starting',
  )
  // CLIENT spans of the calls the gateway makes, when tracing is on (no SDK loaded otherwise).
  const tracing = await startTracing(process.env, {
    role: 'gateway',
    instance: `gateway-${process.pid}`,
  })
  const etcd = createEtcdClient(config.etcdEndpoints, config.etcdAccess)
  const deps: Record<string, DepOptions> = {}
  for (const role of procedures.roles) deps[role] = gateway.deps[role] ?? {}
  // Server-call series by exposed name (`role.path`); any other name counts as `unknown`.
  const metrics = new InstanceMetrics(
    Object.fromEntries(procedures.list().map(({ name, kind }) => [name, kind])),
  )
  const dependencies = new Dependencies({
    etcd,
    etcdEndpoints: config.etcdEndpoints,
    etcdAccess: config.etcdAccess,
    namespace: config.namespace,
    deps,
    log,
    transport: options.transport,
    tracing,
    metrics: metrics.client,
    // The end user authenticate() returned travels signed, in each call's own token.
    tokens: callTokensFor(config.callAuth, 'gateway', config.namespace),
  })
  metrics.observe({
    resolvers: () => dependencies.resolvers.values(),
    // The gateway accepts no RPC streams; it opens them to the services.
    streams: { server: () => 0, client: () => dependencies.openStreams },
  })
  const handler = new GatewayHandler({
    procedures,
    definition: gateway,
    dependencies,
    openapiJson: JSON.stringify(
      openApiDocument(procedures, { title: `${config.namespace} gateway`, version: app.version }),
    ),
    log,
    metrics: { server: metrics.server, scrape: metrics.scrape },
  })
  const server = createServer({ maxHeaderSize: gateway.limits.maxHeaderBytes }, handler.handle)
  server.on('clientError', handler.clientError)
  let address: AddressInfo
  try {
    address = await new Promise<AddressInfo>((resolve, reject) => {
      server.once('error', reject)
      server.listen(config.port, config.host, () => {
        server.off('error', reject)
        resolve(server.address() as AddressInfo)
      })
    })
  } catch (err) {
    await dependencies.close()
    etcd.close()
    await tracing?.shutdown().catch(() => undefined)
    const code = (err as { code?: string }).code
    if (code === 'EADDRINUSE') {
      throw new GatewayConfigError(
        `port ${config.port} on ${config.host} is in use: stop what listens there, or set GATEWAY_PORT`,
      )
    }
    throw err
  }
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`
  log.info(
    { ...lifecycle('listening'), url, port: address.port, exposed: procedures.list().length },
    'listening',
  )

  let stopping: Promise<void> | undefined
  const stop = () => {
    stopping ??= (async () => {
      log.info(lifecycle('stopping'), 'shutting down: answering requests in progress')
      handler.draining = true
      server.close()
      const deadline = Date.now() + config.drainTimeoutMs
      while (handler.inflight > 0 && Date.now() < deadline) {
        server.closeIdleConnections()
        await sleep(10)
      }
      if (handler.inflight > 0) {
        log.warn(
          { ...lifecycle('drained'), inflight: handler.inflight },
          'drain timeout; closing remaining connections',
        )
      } else {
        log.info(lifecycle('drained'), 'drained requests in progress')
      }
      server.closeAllConnections()
      await dependencies.close()
      etcd.close()
      await tracing?.shutdown().catch((err: unknown) => log.warn({ err }, 'trace export failed'))
      log.info(lifecycle('stopped'), 'stopped')
    })()
    return stopping
  }
  return { url, port: address.port, server, handler, dependencies, procedures, log, stop }
}
