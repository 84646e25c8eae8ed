import { type IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { TOKEN_HEADER } from '../protocol/call-token.js'
import {
  isStreamUpgrade,
  UPGRADE_ACCEPTED,
  UPGRADE_DRAINING,
  upgradeRefused,
  upgradeUnauthorized,
} from '../protocol/stream-handshake.js'
import type { VerifiedCaller } from '../security/call-token.js'
import type { CallAuth } from './call-auth.js'
import { encodeOutcome, type Invoker } from './invoker.js'
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
  /**
   * Call tokens: the upgrade must carry a valid one (else 401, closed), and the connection
   * refreshes it in `_auth` frames before it expires (stream-connection.ts).
   */
  auth?: CallAuth
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
    auth: options.auth,
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
          // Only node's own server path emits 'close' on a response; the listeners counting the
          // request in flight (and ending its span) wait for it.
          res.emit('close')
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
    const auth = options.auth
    if (!auth?.required) {
      open(socket, head, undefined)
      return
    }
    const checked = auth.check(req.headers[TOKEN_HEADER])
    if (!(checked instanceof Promise)) {
      authorized(socket, head, checked)
      return
    }
    // Nothing is read until the token is checked (a client sends frames only after the 101).
    socket.pause()
    checked.then(
      (caller) => authorized(socket, head, caller),
      (err: unknown) => {
        log.error({ err }, 'RPC stream token check failed')
        socket.destroy()
      },
    )
  }

  function authorized(socket: Duplex, head: Buffer, caller: VerifiedCaller | string | undefined) {
    if (socket.destroyed) return
    if (typeof caller !== 'object') {
      const refusal = options.invoker.refuseToken(caller ?? 'call token missing')
      // Ended and then destroyed: a paused socket would never read the peer's FIN, and would stay
      // open (half-closed) for good.
      socket.end(upgradeUnauthorized(encodeOutcome(options.invoker, refusal).text), () =>
        socket.destroy(),
      )
      return
    }
    if (draining) {
      socket.end(UPGRADE_DRAINING)
      return
    }
    open(socket, head, caller)
    socket.resume()
  }

  function open(socket: Duplex, head: Buffer, caller: VerifiedCaller | undefined): void {
    socket.write(UPGRADE_ACCEPTED)
    const connection = new StreamConnection(socket, connectionOptions, caller)
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
