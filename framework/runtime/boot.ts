import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { hostname } from 'node:os'
import { TRPCError } from '@trpc/server'
import type { Etcd3 } from 'etcd3'
import { type Logger, pino } from 'pino'
import { Dependencies } from '../client/dependencies.js'
import type { AppInfo } from '../config/app.js'
import { lifecycle } from '../internal/lifecycle-event.js'
import { sleep } from '../internal/timers.js'
import { TOKEN_HEADER } from '../protocol/call-token.js'
import { deadlineFrom } from '../protocol/headers.js'
import { RPC_PREFIX } from '../protocol/paths.js'
import { createEtcdClient } from '../registry/etcd-client.js'
import { instanceKey, type PhoneBookRecord, RECORD_VERSION } from '../registry/record.js'
import { Registration } from '../registry/registration.js'
import { callTokensFor } from '../security/call-tokens.js'
import type { InstanceInfo } from '../service/context.js'
import type { AnyServiceDefinition } from '../service/define-service.js'
import { contractHash, procedureManifest } from '../service/manifest.js'
import { InstanceMetrics } from '../telemetry/instance-metrics.js'
import { startTracing } from '../telemetry/tracing.js'
import { CallAuth } from './call-auth.js'
import { callContextFactory, requestMetadata } from './call-context.js'
import type { RuntimeConfig } from './config.js'
import { createFastPathHandler } from './fast-path.js'
import { HttpDrain } from './http-drain.js'
import { createHttpApp } from './http-server.js'
import { createInvoker } from './invoker.js'
import { LoadSampler } from './load.js'
import { measuredInvoker } from './measured-invoker.js'
import { InflightLimit } from './overload.js'
import { createStreamServer } from './rpc-stream.js'
import { ServedCalls } from './served-calls.js'

/** A booted instance: serving, and registered (or registering) in the phone book. */
export interface RunningInstance {
  readonly instance: InstanceInfo
  readonly key: string
  readonly server: Server
  readonly registration: Registration
  readonly etcd: Etcd3
  readonly log: Logger
  /** Clients of the declared dependencies (undefined when there are none). */
  readonly deps: Dependencies | undefined
  /** Calls served per procedure (logged on the `stopped` line). */
  readonly served: ServedCalls
  /** Graceful stop: revoke the lease, goaway, answer the calls already sent, stop listening, close. */
  stop(): Promise<void>
}

export interface StartOptions {
  definition: AnyServiceDefinition
  config: RuntimeConfig
  app: AppInfo
  /** Defaults to a pino logger on stdout at `config.logLevel`. */
  log?: Logger
}

function newInstanceId(role: string): string {
  return `${role}-${randomBytes(5).toString('hex')}`
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve(server.address() as AddressInfo)
    })
  })
}

/**
 * Boots one instance: the lease granted while the HTTP server starts, the record put once it
 * listens (registration is retried forever in the background).
 */
export async function startInstance(options: StartOptions): Promise<RunningInstance> {
  const { definition, config, app } = options
  const id = newInstanceId(definition.role)
  const log = (options.log ?? pino({ level: config.logLevel })).child({
    role: definition.role,
    instance: id,
  })
  log.info(
    { ...lifecycle('starting'), namespace: config.namespace, etcd: config.etcdEndpoints },
    'starting',
  )

  const procedures = procedureManifest(definition.router)
  const load = new LoadSampler()
  const served = new ServedCalls(procedures)
  const metrics = new InstanceMetrics(procedures)
  const etcd = createEtcdClient(config.etcdEndpoints, config.etcdAccess)
  const startedAt = new Date().toISOString()
  const instance: { id: string; role: string; url: string } = { id, role: definition.role, url: '' }
  const key = instanceKey(config.namespace, definition.role, id)
  // Read when the record is put (after listen, so `instance.url` is known) and on load refreshes.
  const record = (): PhoneBookRecord => ({
    v: RECORD_VERSION,
    role: definition.role,
    id,
    url: instance.url,
    version: definition.version ?? app.version,
    contract: contractHash(procedures),
    procedures,
    load: load.sample(),
    startedAt,
    host: hostname(),
    pid: process.pid,
  })
  const registration = new Registration({
    client: etcd,
    endpoints: config.etcdEndpoints,
    access: config.etcdAccess,
    key,
    ttlSeconds: config.ttlSeconds,
    loadRefreshMs: config.loadRefreshMs,
    record,
    log,
  })
  // The lease is granted while tracing starts and the server is built and starts listening, so
  // that once it serves, the record is one etcd write (the put) away from callers, not two.
  void registration.prepare()
  // Undefined (and the OpenTelemetry SDK never loaded) unless an OTLP endpoint is configured.
  const tracing = await startTracing(process.env, { role: definition.role, instance: id }).catch(
    async (err: unknown) => {
      await registration.stop()
      load.close()
      etcd.close()
      throw err
    },
  )

  const auth = new CallAuth(config.callAuth, definition.role, config.namespace)
  const deps =
    Object.keys(definition.deps).length > 0
      ? new Dependencies({
          etcd,
          etcdEndpoints: config.etcdEndpoints,
          etcdAccess: config.etcdAccess,
          namespace: config.namespace,
          deps: definition.deps,
          log,
          tracing,
          metrics: metrics.client,
          tokens: callTokensFor(config.callAuth, definition.role, config.namespace),
        })
      : undefined
  const contextFor = callContextFactory({ instance, log, deps })
  const invoker = measuredInvoker(
    createInvoker({
      router: definition.router,
      context: contextFor,
      load,
      served,
      log,
      tracing,
      auth,
    }),
    metrics.server,
  )
  // One limit for every transport, on the one in-flight count (load.inflight).
  const limit = new InflightLimit({
    load,
    max: config.maxInflight,
    refuse: invoker.refuse,
    log,
    metrics: metrics.server,
  })
  const httpApp = createHttpApp({
    router: definition.router,
    context: auth.required
      ? async (req, procedure, span) => {
          // tRPC answers a context that throws with the error's status: 401, nothing runs.
          const caller = await auth.check(req.headers[TOKEN_HEADER])
          if (typeof caller !== 'object') {
            throw new TRPCError({ code: 'UNAUTHORIZED', message: caller ?? 'call token missing' })
          }
          const metadata = await auth.principal(requestMetadata(req.headers), caller)
          if (typeof metadata === 'string') {
            throw new TRPCError({ code: 'UNAUTHORIZED', message: metadata })
          }
          return contextFor(deadlineFrom(req.headers), metadata, procedure, span, caller.role)
        }
      : (req, procedure, span) =>
          contextFor(deadlineFrom(req.headers), requestMetadata(req.headers), procedure, span),
    log,
    load,
    limit,
    served,
    maxBodyBytes: config.maxBodyBytes,
    isReady: () => registration.registered,
    tracing,
    scrape: metrics.scrape,
    metrics: metrics.server,
    metricsAuth: config.callAuth.metricsOpen
      ? undefined
      : async (req) => {
          const caller = await auth.check(req.headers[TOKEN_HEADER])
          return typeof caller === 'object' ? undefined : (caller ?? 'call token missing')
        },
  })
  const fastPath = createFastPathHandler({
    invoker,
    log,
    maxBodyBytes: config.maxBodyBytes,
    maxBatchSize: config.maxBatchSize,
    limit,
    auth,
  })
  // The framework's own clients take the lean path (an upgraded RPC stream, or single and batch
  // requests under /_rpc/); everyone else gets express + tRPC's adapter.
  const route = (req: IncomingMessage, res: ServerResponse) => {
    if (req.url?.startsWith(RPC_PREFIX)) fastPath(req, res)
    else httpApp(req, res)
  }
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    httpDrain.track(res)
    route(req, res)
  }
  const streams = createStreamServer({
    invoker,
    log,
    maxFrameBytes: config.maxBodyBytes,
    limit,
    // (Its answers close their connection, and are not waited for by the drain.)
    fallback: route,
    auth,
  })
  const server = createServer(handle)
  const httpDrain = new HttpDrain(server)
  server.on('upgrade', (req, socket, head) => streams.upgrade(req, socket, head))
  /** A boot that fails: the prepared lease is revoked and every client closed, then it throws. */
  const abandon = async (err: unknown): Promise<never> => {
    server.closeAllConnections()
    server.close()
    await registration.stop()
    await deps?.close()
    load.close()
    etcd.close()
    await tracing?.shutdown()
    throw err
  }
  const address = await listen(server, config.port, config.host).catch(abandon)
  instance.url = config.advertiseUrl ?? `http://${formatHost(config.advertiseHost)}:${address.port}`
  if (config.portFile) writeFileSync(config.portFile, String(address.port))
  log.info({ ...lifecycle('listening'), url: instance.url, port: address.port }, 'listening')

  metrics.observe({
    registration,
    resolvers: () => deps?.resolvers.values() ?? [],
    streams: { server: () => streams.open, client: () => deps?.openStreams ?? 0 },
  })
  if (deps && definition.waitForDeps) {
    log.info(
      { ...lifecycle('waiting-for-deps'), roles: [...deps.clients.keys()] },
      'waiting for dependencies',
    )
    try {
      await deps.waitForInstances(definition.waitForDeps.timeoutMs)
    } catch (err) {
      log.error({ err: (err as Error).message }, 'dependencies not available')
      await abandon(err)
    }
  }
  registration.start()

  let stopping: Promise<void> | undefined
  const stop = () => {
    stopping ??= (async () => {
      log.info(lifecycle('stopping'), 'shutting down: revoking lease')
      // From now on every answer closes its connection, also while the revoke is on its way.
      httpDrain.start()
      await registration.stop()
      httpDrain.leftPhoneBook()
      // The lease is gone, so callers stop picking this instance; stream callers are told to
      // stop sending (goaway) and new streams are refused (503: the caller goes elsewhere).
      streams.drain()
      // The port stays open until the calls already here are answered: a connection a caller
      // opened before it knew gets an answer, not a reset with its request unread (which the
      // caller could not tell from a call that ran).
      const deadline = Date.now() + config.drainTimeoutMs
      const busy = () => httpDrain.busy || load.inflight > 0 || streams.open > 0
      while (busy() && Date.now() < deadline) await sleep(10)
      server.close()
      if (busy()) {
        log.warn(
          {
            ...lifecycle('drained'),
            requests: httpDrain.requests,
            connections: httpDrain.connections,
            inflight: load.inflight,
            streams: streams.open,
          },
          'drain timeout; closing remaining connections',
        )
      } else {
        log.info(lifecycle('drained'), 'drained in-flight requests')
      }
      streams.destroyAll()
      server.closeAllConnections()
      await deps?.close()
      load.close()
      etcd.close()
      // The spans still buffered are exported before the process goes.
      await tracing?.shutdown().catch((err: unknown) => log.warn({ err }, 'trace export failed'))
      log.info({ ...lifecycle('stopped'), served: served.snapshot() }, 'stopped')
    })()
    return stopping
  }
  return { instance, key, server, registration, etcd, log, deps, served, stop }
}

function formatHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
}
