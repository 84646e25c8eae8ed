import { type IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import {
  isStreamUpgrade,
  UPGRADE_ACCEPTED,
  UPGRADE_DRAINING,
  upgradeRefused,
} from '../protocol/stream-handshake.js'
import type { Invoker } from './invoker.js'
import type { InflightLimit } from './overload.js'
import { StreamConnection, type StreamConnectionOptions } from './stream-connection.js'

/**
 * The RPC stream's server: the framework's own clients upgrade one connection per instance
 * (`GET /_rpc/_stream`, `Upgrade: framework-rpc/1`, answered `101`; protocol/stream-handshake.ts)
 * and then exchange newline-delimited JSON frames on it, many calls in flight at once
 * (protocol/stream-frames.ts; one StreamConnection each).
 *
 * Answers come back in completion order. No HTTP parsing per call and one write per tick for
 * all the answers ready, which is what makes it cheaper than a request per call.
 */
export interface StreamServerOptions {
  invoker: Invoker
  log: Logger
  /** The longest frame accepted (bytes); the same limit as a request body. */
  maxFrameBytes: number
  /** The instance's in-flight limit (call frames over it are answered 503). */
  limit?: InflightLimit
  /** Serves GET/HEAD requests that carry some other `Upgrade` header, as plain HTTP/1.1. */
  fallback?: (req: IncomingMessage, res: ServerResponse) => void
}

export interface StreamServer {
  /** The http server's `upgrade` listener. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void
  /** Tells every client to stop sending (goaway); connections close once their calls answered. */
  drain(): void
  /** Connections still open. */
  readonly open: number
  /** Closes every connection at once. */
  destroyAll(): void
}

export function createStreamServer(options: StreamServerOptions): StreamServer {
  const { log } = options
  const connections = new Set<StreamConnection>()
  let draining = false
  const connectionOptions: StreamConnectionOptions = {
    invoker: options.invoker,
    log,
    maxFrameBytes: options.maxFrameBytes,
    limit: options.limit,
    onClose: (connection) => connections.delete(connection),
  }

  function accept(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (!isStreamUpgrade(req.url, req.headers.upgrade)) {
      // Not ours (h2c from Java's HttpClient, curl --http2, a websocket): answer as HTTP/1.1.
      if ((req.method === 'GET' || req.method === 'HEAD') && options.fallback) {
        const res = new ServerResponse(req)
        res.shouldKeepAlive = false
        res.assignSocket(socket as Socket)
        res.on('finish', () => {
          res.detachSocket(socket as Socket)
          socket.end()
        })
        options.fallback(req, res)
        return
      }
      socket.end(upgradeRefused(req.method))
      return
    }
    if (draining) {
      socket.end(UPGRADE_DRAINING)
      return
    }
    socket.write(UPGRADE_ACCEPTED)
    const connection = new StreamConnection(socket, connectionOptions)
    connections.add(connection)
    connection.start(head)
  }

  return {
    upgrade(req, socket, head) {
      try {
        accept(req, socket, head)
      } catch (err) {
        log.error({ err }, 'RPC stream upgrade failed')
        socket.destroy()
      }
    },
    drain() {
      draining = true
      for (const connection of connections) connection.goaway()
    },
    get open() {
      return connections.size
    },
    destroyAll() {
      for (const connection of connections) connection.socket.destroy()
      connections.clear()
    },
  }
}
