import { once } from 'node:events'
import { connect, createServer, type Server, type Socket } from 'node:net'

/**
 * A TCP proxy on 127.0.0.1 in front of one target port, which a test can cut and restore: to
 * disconnect one client (say, a resolver's etcd client) from etcd while everything else stays
 * connected. The proxy keeps its listening port the whole time, so `restore()` serves on the same
 * port (a closed listener could lose its port to another process meanwhile); while cut it resets
 * every new connection at once.
 */
export class TcpProxy {
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  #cut = false
  #closed = false
  #targetPort: number

  private constructor(
    server: Server,
    readonly port: number,
    targetPort: number,
  ) {
    this.#server = server
    this.#targetPort = targetPort
  }

  /** The port new connections are forwarded to. */
  get targetPort(): number {
    return this.#targetPort
  }

  /** Forwards new connections to another port from now on (say, another etcd cluster). */
  retarget(targetPort: number): void {
    this.#targetPort = targetPort
  }

  /** Starts a proxy on a free loopback port forwarding to `127.0.0.1:<targetPort>`. */
  static async start(targetPort: number): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined
    const server = createServer({ noDelay: true }, (socket) => {
      if (proxy) proxy.#accept(socket)
      else socket.destroy()
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('proxy has no TCP port')
    proxy = new TcpProxy(server, address.port, targetPort)
    return proxy
  }

  /** `http://127.0.0.1:<port>`, for an etcd client's hosts. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  /** True while cut. */
  get isCut(): boolean {
    return this.#cut
  }

  /** Connections being forwarded right now (client side and target side each count). */
  get connections(): number {
    return this.#sockets.size
  }

  /** Resets every forwarded connection and refuses (resets) new ones until `restore()`. */
  cut(): void {
    this.#cut = true
    this.#destroyAll()
  }

  /** Forwards new connections again, on the same port. */
  restore(): void {
    if (this.#closed) throw new Error('proxy is closed')
    this.#cut = false
  }

  /** Stops listening and drops every connection. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#cut = true
    this.#destroyAll()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  #accept(client: Socket): void {
    if (this.#cut) {
      client.on('error', () => undefined)
      client.resetAndDestroy()
      return
    }
    const upstream = connect({ host: '127.0.0.1', port: this.#targetPort, noDelay: true })
    this.#track(client, upstream)
    this.#track(upstream, client)
    client.pipe(upstream)
    upstream.pipe(client)
  }

  /** Keeps `socket` in the set while open; when it ends or fails, its peer goes too. */
  #track(socket: Socket, peer: Socket): void {
    this.#sockets.add(socket)
    socket.on('error', () => peer.destroy())
    socket.on('close', () => {
      this.#sockets.delete(socket)
      peer.destroy()
    })
  }

  #destroyAll(): void {
    for (const socket of [...this.#sockets]) {
      // A reset, not a FIN: the way a dropped link or a dead peer looks to the client.
      // (A socket still connecting would only be reset once connected: destroy it now instead.)
      if (socket.connecting) socket.destroy()
      else if (!socket.destroyed) socket.resetAndDestroy()
    }
    this.#sockets.clear()
  }
}
