import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { composeCommand, dockerEngineAnswers } from '../../../framework/cli/docker.js'
import { waitFor } from '../../support/wait.js'

const INSTALL_TIMEOUT_MS = 600_000
const ENGINE_START_TIMEOUT_MS = 90_000
const ENGINE_STOP_TIMEOUT_MS = 30_000

/** The output of a command that must succeed within `timeoutMs`; else an error with its stderr. */
export function runChecked(
  command: string,
  args: string[],
  options: { timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): string {
  const result = spawnSync(command, args, {
    cwd: options.cwd,
    env: options.env,
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 60_000,
    maxBuffer: 64 * 2 ** 20,
  })
  if (result.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} failed (${result.error?.message ?? `exit ${result.status}`}):\n${result.stderr}${result.stdout}`.trim(),
    )
  }
  return result.stdout
}

const onPath = (binary: string) =>
  spawnSync('sh', ['-c', 'command -v "$1"', 'sh', binary], { stdio: 'ignore' }).status === 0

/**
 * Installs the Docker engine and compose from Debian's packages (docker.io, docker-compose) when
 * the engine, its CLI or any compose (v2 plugin or v1) is missing. CI machines start with Node only.
 */
export function ensureDockerTools(log: (line: string) => void): void {
  const missing = ['dockerd', 'docker'].filter((binary) => !onPath(binary))
  if (missing.length === 0 && composeCommand()) return
  if (process.getuid?.() !== 0) {
    throw new Error(
      `${[...missing, 'compose'].join(', ')} missing and not root: sudo apt-get install -y docker.io docker-compose`,
    )
  }
  log('installing docker.io and docker-compose (apt-get)…')
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  runChecked('apt-get', ['update', '-qq'], { env, timeoutMs: INSTALL_TIMEOUT_MS })
  runChecked('apt-get', ['install', '-y', '-qq', 'docker.io', 'docker-compose'], {
    env,
    timeoutMs: INSTALL_TIMEOUT_MS,
  })
}

/**
 * A Docker engine to run compose against: the one that already answers (left running), or a
 * `dockerd` this process starts (vfs storage, no iptables, no bridge: the machines here allow no
 * more) and stops by its pid.
 */
export class DockerEngine {
  private constructor(
    private readonly daemon: ChildProcess | undefined,
    readonly logFile: string | undefined,
  ) {}

  /** The pid of the dockerd this suite started, or undefined if it found one answering. */
  get startedPid(): number | undefined {
    return this.daemon?.pid
  }

  static async ensure(workDir: string, log: (line: string) => void): Promise<DockerEngine> {
    if (dockerEngineAnswers()) {
      log('a Docker engine already answers: using it (and leaving it running)')
      return new DockerEngine(undefined, undefined)
    }
    const logFile = join(workDir, 'dockerd.log')
    const fd = openSync(logFile, 'a')
    const daemon = spawn('dockerd', ['--storage-driver=vfs', '--iptables=false', '--bridge=none'], {
      stdio: ['ignore', fd, fd],
    })
    closeSync(fd)
    const engine = new DockerEngine(daemon, logFile)
    let exited = false
    daemon.once('exit', () => {
      exited = true
    })
    try {
      await waitFor(
        'docker info to answer',
        () => {
          if (exited) throw new Error('dockerd exited')
          return dockerEngineAnswers()
        },
        ENGINE_START_TIMEOUT_MS,
        500,
      )
    } catch (err) {
      await engine.stop()
      throw new Error(`${(err as Error).message}; dockerd log:\n${engine.logTail()}`)
    }
    log(`started dockerd (pid ${daemon.pid}, log ${logFile})`)
    return engine
  }

  logTail(lines = 30): string {
    if (!this.logFile) return ''
    return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  }

  /**
   * Removes the images the suite built (`reference`, e.g. `shop-*:dev`) and, on an engine the
   * suite started itself, the untagged build stages they left. With vfs storage every layer is a
   * full copy: left behind, each run added ~7 GB until the disk filled (ENOSPC in a build). On an
   * engine found running (someone's own), only the suite's tagged images are removed.
   */
  removeBuiltImages(reference: string, log: (line: string) => void): void {
    const listed = spawnSync(
      'docker',
      ['images', '--quiet', '--filter', `reference=${reference}`],
      {
        encoding: 'utf8',
      },
    )
    const ids = [...new Set(listed.stdout.split('\n').filter(Boolean))]
    if (ids.length > 0) {
      const removed = spawnSync('docker', ['rmi', '--force', ...ids], { encoding: 'utf8' })
      if (removed.status !== 0) log(`removing images ${reference} failed: ${removed.stderr.trim()}`)
    }
    if (this.daemon) spawnSync('docker', ['image', 'prune', '--force'], { stdio: 'ignore' })
    log(
      `removed ${ids.length} built image(s) ${reference}${this.daemon ? ' and dangling build stages' : ''}`,
    )
  }

  /** Stops the dockerd this suite started (SIGTERM, then SIGKILL after 30 s); nothing otherwise. */
  async stop(): Promise<void> {
    const daemon = this.daemon
    if (!daemon || daemon.exitCode !== null || daemon.signalCode !== null) return
    const exited = new Promise<void>((resolve) => daemon.once('exit', () => resolve()))
    daemon.kill('SIGTERM')
    const timer = setTimeout(() => daemon.kill('SIGKILL'), ENGINE_STOP_TIMEOUT_MS)
    await exited
    clearTimeout(timer)
  }
}
