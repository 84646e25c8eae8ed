/**
 * Moleculer's TCP transporter held to 127.0.0.1, for the call-overhead baseline (0.14 and 0.15).
 *
 * Stock `{ type: 'TCP' }` with `udpDiscovery: false` sends no UDP, but its TcpReader listens with
 * `{ port, exclusive }` and no host (every interface), and once a peer's INFO arrives the writer
 * dials the peer's reported hostname or first non-internal IPv4. This subclass listens on
 * 127.0.0.1 and always dials 127.0.0.1. The wire protocol, gossip and packet handling are
 * Moleculer's own, so per-call cost is unchanged. Relies on src/transporters/tcp internals, which
 * are the same in 0.14.36 and 0.15.2 (TcpReader.listen, TcpWriter, startTcpServer,
 * getNodeAddress); the subclass is built over whichever package it is given.
 */
import type { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'
import { createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import type { MoleculerPackage, MoleculerVersion, TcpTransporter } from './moleculer-package.js'

export const LOOPBACK = '127.0.0.1'

export interface LoopbackTcpOptions {
  /** TCP port this node listens on (127.0.0.1 only). */
  port: number
  /** Peers as `127.0.0.1:<port>/<nodeID>`. */
  urls: string[]
  /** Seconds between gossip rounds (Moleculer's default is 2). */
  gossipPeriod?: number
}

interface TcpReader {
  opts: { port: number | null }
  server: Server | null
  connected: boolean
  logger: { error: (...args: unknown[]) => void }
  onTcpClientConnected(socket: Socket): void
  listen(): Promise<number>
}
type TcpReaderClass = new (transporter: unknown, opts: unknown) => TcpReader
type TcpWriterClass = new (transporter: unknown, opts: unknown) => EventEmitter
type LoopbackClass = new (options: LoopbackTcpOptions) => TcpTransporter

const require = createRequire(import.meta.url)
const classes = new Map<MoleculerVersion, LoopbackClass>()

/** `transporter: loopbackTransporter(pkg, { port, urls })`: TCP, no UDP, 127.0.0.1 only. */
export function loopbackTransporter(
  pkg: MoleculerPackage,
  options: LoopbackTcpOptions,
): TcpTransporter {
  let Loopback = classes.get(pkg.version)
  if (!Loopback) {
    Loopback = loopbackClass(pkg)
    classes.set(pkg.version, Loopback)
  }
  return new Loopback(options)
}

/**
 * Throws unless the transporter's TCP server listens on 127.0.0.1 (after broker.start()): the
 * guarantee must not rest on method names staying as they are in a later Moleculer.
 */
export function assertLoopback(transporter: TcpTransporter): void {
  const address = (transporter.reader as TcpReader | null)?.server?.address()
  if (typeof address !== 'object' || address?.address !== LOOPBACK) {
    throw new Error(
      `Moleculer's TCP server listens on ${JSON.stringify(address)}, not ${LOOPBACK}: ` +
        'its transporter internals changed; update bench/moleculer-loopback.ts',
    )
  }
}

function loopbackClass(pkg: MoleculerPackage): LoopbackClass {
  for (const method of ['startTcpServer', 'getNodeAddress']) {
    if (typeof (pkg.TcpTransporter.prototype as Record<string, unknown>)[method] !== 'function') {
      throw new Error(
        `Moleculer ${pkg.installed}'s TcpTransporter has no ${method}(): ` +
          'bench/moleculer-loopback.ts cannot hold it to 127.0.0.1; update it',
      )
    }
  }
  // Loaded from the same package as the transporter, so both share its packets and errors.
  const TcpReader = require(join(pkg.tcpDir, 'tcp-reader.js')) as TcpReaderClass
  const TcpWriter = require(join(pkg.tcpDir, 'tcp-writer.js')) as TcpWriterClass

  class LoopbackTcpReader extends TcpReader {
    override listen(): Promise<number> {
      return new Promise((resolve, reject) => {
        const server = createServer((socket) => this.onTcpClientConnected(socket))
        server.once('error', reject)
        server.listen({ host: LOOPBACK, port: this.opts.port ?? 0, exclusive: true }, () => {
          server.off('error', reject)
          server.on('error', (error) => this.logger.error('TCP server error', error))
          this.opts.port = (server.address() as { port: number }).port
          this.connected = true
          resolve(this.opts.port)
        })
        this.server = server
      })
    }
  }

  return class LoopbackTcpTransporter extends pkg.TcpTransporter {
    constructor(options: LoopbackTcpOptions) {
      super({
        udpDiscovery: false,
        useHostname: false,
        port: options.port,
        urls: options.urls,
        gossipPeriod: options.gossipPeriod ?? 2,
      })
    }

    /** Moleculer's startTcpServer, with the reader bound to 127.0.0.1. */
    startTcpServer(): Promise<number> {
      const writer = new TcpWriter(this, this.opts)
      const reader = new LoopbackTcpReader(this, this.opts)
      writer.on('error', (error: unknown, nodeID: string) => {
        this.logger.debug(`TCP client error on '${nodeID}'`, error)
        this.nodes.disconnected(nodeID, false)
      })
      writer.on('end', (nodeID: string) => {
        this.logger.debug(`TCP connection ended with '${nodeID}'`)
        this.nodes.disconnected(nodeID, false)
      })
      this.writer = writer
      this.reader = reader
      return reader.listen()
    }

    /** Every peer is dialled (and announced) on loopback, whatever hostname or IPs it reports. */
    getNodeAddress(): string {
      return LOOPBACK
    }
  }
}
