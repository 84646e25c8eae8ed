import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { request } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './free-port.js'

const ETCD_BIN = process.env.ETCD_BIN ?? 'etcd'

/** How to get an etcd binary, for the message when none is found. */
export const ETCD_INSTALL_HINT = `install etcd (${
  process.platform === 'darwin'
    ? 'brew install etcd'
    : process.platform === 'win32'
      ? 'download it from the etcd releases page'
      : 'Debian/Ubuntu: sudo apt-get install -y etcd-server etcd-client'
}), set ETCD_BIN to its path, or point ETCD_ENDPOINTS at a running etcd`

/** Serve clients over TLS: etcd's certificate, and optionally require client certificates. */
export interface EtcdTlsOptions {
  /** PEM files: etcd's server certificate (with a SAN for 127.0.0.1) and its key. */
  certFile: string
  keyFile: string
  /** The CA that client certificates must chain to (`--client-cert-auth --trusted-ca-file`). */
  clientCaFile?: string
  /** A client certificate the health check presents when client certificates are required. */
  healthClient?: { caFile: string; certFile: string; keyFile: string }
}

export interface EtcdServerOptions {
  tls?: EtcdTlsOptions
}

/** etcd's /health over TLS: https with the test CA and client certificate. */
function tlsHealthy(url: string, client: EtcdTlsOptions['healthClient']): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        timeout: 500,
        ...(client
          ? {
              ca: readFileSync(client.caFile),
              cert: readFileSync(client.certFile),
              key: readFileSync(client.keyFile),
            }
          : { rejectUnauthorized: false }),
      },
      (res) => {
        res.resume()
        resolve(res.statusCode === 200)
      },
    )
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(false))
    req.end()
  })
}

/**
 * A real single-member etcd from the `etcd` binary, on free loopback ports with a temporary data
 * dir: for local runs without Docker, and for tests. `stop()` and `start()` keep the data dir;
 * `wipe()` empties it (the revision goes backwards, leases are forgotten).
 */
export class EtcdServer {
  #process: ChildProcess | undefined
  #dataDir: string
  #output = ''

  private constructor(
    readonly clientPort: number,
    readonly peerPort: number,
    readonly options: EtcdServerOptions,
  ) {
    this.#dataDir = mkdtempSync(join(tmpdir(), 'framework-etcd-'))
  }

  static async start(options: EtcdServerOptions = {}): Promise<EtcdServer> {
    const server = new EtcdServer(await freePort(), await freePort(), options)
    await server.start()
    return server
  }

  get endpoint(): string {
    return `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${this.clientPort}`
  }

  get running(): boolean {
    return this.#process !== undefined
  }

  async start(): Promise<void> {
    if (this.#process) return
    const peer = `http://127.0.0.1:${this.peerPort}`
    const { tls } = this.options
    const tlsFlags = tls
      ? [
          '--cert-file',
          tls.certFile,
          '--key-file',
          tls.keyFile,
          ...(tls.clientCaFile
            ? ['--client-cert-auth', '--trusted-ca-file', tls.clientCaFile]
            : []),
        ]
      : []
    const child = spawn(
      ETCD_BIN,
      [
        '--name',
        'test',
        '--data-dir',
        this.#dataDir,
        '--listen-client-urls',
        this.endpoint,
        '--advertise-client-urls',
        this.endpoint,
        '--listen-peer-urls',
        peer,
        '--initial-advertise-peer-urls',
        peer,
        '--initial-cluster',
        `test=${peer}`,
        '--log-level',
        'error',
        ...tlsFlags,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    this.#output = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      this.#output += chunk.toString()
    })
    child.stderr?.on('data', (chunk: Buffer) => {
      this.#output += chunk.toString()
    })
    let spawnError: Error | undefined
    child.once('error', (err) => {
      spawnError = err
    })
    this.#process = child
    const deadline = Date.now() + 15_000
    while (Date.now() < deadline) {
      if (spawnError) {
        this.#process = undefined
        throw new Error(`cannot run '${ETCD_BIN}' (${spawnError.message}): ${ETCD_INSTALL_HINT}`)
      }
      if (child.exitCode !== null) break
      if (tls) {
        if (await tlsHealthy(`${this.endpoint}/health`, tls.healthClient)) return
      } else {
        try {
          const res = await fetch(`${this.endpoint}/health`, { signal: AbortSignal.timeout(500) })
          if (res.ok) return
        } catch {}
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    await this.stop('SIGKILL')
    throw new Error(`etcd did not become healthy on ${this.endpoint}:\n${this.#output}`)
  }

  /** SIGTERM (or SIGKILL) and wait for exit; the data dir is kept. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#process
    if (!child) return
    this.#process = undefined
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      child.kill(signal)
      await once(child, 'exit')
    }
  }

  /** Stops etcd and replaces its data dir with an empty one. */
  async wipe(): Promise<void> {
    await this.stop()
    rmSync(this.#dataDir, { recursive: true, force: true })
    this.#dataDir = mkdtempSync(join(tmpdir(), 'framework-etcd-'))
  }

  async dispose(): Promise<void> {
    await this.stop('SIGKILL')
    rmSync(this.#dataDir, { recursive: true, force: true })
  }
}
