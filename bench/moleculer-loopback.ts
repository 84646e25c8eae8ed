/**
 * Moleculer 0.14's TCP transporter held to 127.0.0.1, for the call-overhead baseline.
 *
 * Stock `{ type: 'TCP' }` with `udpDiscovery: false` sends no UDP, but its TcpReader listens with
 * `{ port, exclusive }` and no host (every interface), and once a peer's INFO arrives the writer
 * dials the peer's reported hostname or first non-internal IPv4. This subclass listens on
 * 127.0.0.1 and always dials 127.0.0.1. The wire protocol, gossip and packet handling are
 * Moleculer's own, so per-call cost is unchanged. Relies on 0.14 internals (src/transporters/tcp).
 */
import type { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'
import { createServer, type Server, type Socket } from 'node:net'
import { dirname, join } from 'node:path'
import { Transporters } from 'moleculer'

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
  close(): void
}
type TcpReaderClass = new (transporter: unknown, opts: unknown) => TcpReader
type TcpWriterClass = new (transporter: unknown, opts: unknown) => EventEmitter

// Not in moleculer's package exports; loaded by file path from the installed package.
const require = createRequire(import.meta.url)
const tcpDir = join(dirname(require.resolve('moleculer')), 'src/transporters/tcp')
const TcpReader = require(join(tcpDir, 'tcp-reader.js')) as TcpReaderClass
const TcpWriter = require(join(tcpDir, 'tcp-writer.js')) as TcpWriterClass

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

/** `transporter: new LoopbackTcpTransporter({ port, urls })`: TCP, no UDP, 127.0.0.1 only. */
export class LoopbackTcpTransporter extends Transporters.TCP {
  // Members of Moleculer's TcpTransporter that its typings leave out.
  declare opts: Record<string, unknown>
  declare reader: TcpReader | null
  declare writer: EventEmitter | null
  declare logger: { debug: (...args: unknown[]) => void }
  declare nodes: { disconnected: (nodeID: string, unexpected: boolean) => void }

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
