import { once } from 'node:events'
import { createServer, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * An HTTP proxy on 127.0.0.1 that forwards requests to one port and drops every upgrade (closes
 * the connection without an answer, as some proxies do): the framework's client then uses
 * requests to whatever is advertised at the proxy's URL, never the RPC stream.
 */
export class NoUpgradeProxy {
  /** Upgrade requests dropped. */
  droppedUpgrades = 0

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(targetPort: number): Promise<NoUpgradeProxy> {
    let proxy: NoUpgradeProxy | undefined
    const server = createServer((req, res) => {
      const forwarded = request(
        {
          host: '127.0.0.1',
          port: targetPort,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers)
          answer.pipe(res)
        },
      )
      forwarded.on('error', () => res.destroy())
      req.pipe(forwarded)
    })
    server.on('upgrade', (_req, socket) => {
      if (proxy) proxy.droppedUpgrades++
      socket.end()
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo
    proxy = new NoUpgradeProxy(server, `http://127.0.0.1:${port}`)
    return proxy
  }

  async close(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise((resolve) => this.server.close(resolve))
  }
}
