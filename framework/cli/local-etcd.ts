import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
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
  ) {
    this.#dataDir = mkdtempSync(join(tmpdir(), 'framework-etcd-'))
  }

  static async start(): Promise<EtcdServer> {
    const server = new EtcdServer(await freePort(), await freePort())
    await server.start()
    return server
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.clientPort}`
  }

  get running(): boolean {
    return this.#process !== undefined
  }

  async start(): Promise<void> {
    if (this.#process) return
    const peer = `http://127.0.0.1:${this.peerPort}`
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
      try {
        const res = await fetch(`${this.endpoint}/health`, { signal: AbortSignal.timeout(500) })
        if (res.ok) return
      } catch {}
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
