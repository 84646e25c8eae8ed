import { spawn, spawnSync } from 'node:child_process'
import { appendFileSync, cpSync, existsSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { composeContainers } from '../../../framework/cli/dev-compose.js'
import type { ContainerState } from '../../../framework/cli/docker.js'
import { type LogLine, REPO_ROOT } from '../../support/instance.js'

/** What a finished command printed (stdout and stderr interleaved) and how it ended. */
export interface CommandResult {
  code: number | null
  output: string
  ms: number
}

/**
 * The example app (this repo's framework/ and services/) copied to a temp dir and run under its
 * own compose project: `framework dev` writes docker-compose.yml into the app, and the repo's
 * own file must stay as committed. The copy is still the framework's own repo to the CLI (it
 * builds from framework/cli/templates/Dockerfile), with node_modules linked for host-side runs.
 */
export class ExampleApp {
  readonly root: string
  readonly logFile: string
  readonly env: NodeJS.ProcessEnv

  constructor(
    workDir: string,
    logDir: string,
    readonly project: string,
    readonly compose: string[],
  ) {
    this.root = join(workDir, 'app')
    this.logFile = join(logDir, 'commands.log')
    const entries = [
      'framework',
      'services',
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.build.json',
    ]
    for (const entry of [...entries, '.dockerignore']) {
      if (existsSync(join(REPO_ROOT, entry)))
        cpSync(join(REPO_ROOT, entry), join(this.root, entry), { recursive: true })
    }
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(this.root, 'node_modules'))
    const { ETCD_ENDPOINTS: _endpoints, FRAMEWORK_NAMESPACE: _namespace, ...rest } = process.env
    this.env = { ...rest, COMPOSE_PROJECT_NAME: project, NO_COLOR: '1' }
  }

  /** `framework <args>` from the copy, in the app; killed after `timeoutMs`. */
  cli(args: string[], timeoutMs = 60_000): Promise<CommandResult> {
    return this.run(process.execPath, [join(this.root, 'framework/cli/bin.js'), ...args], timeoutMs)
  }

  /** The compose command the framework detected (v2 plugin, else v1), in the app's project. */
  composeRun(args: string[], timeoutMs = 120_000): Promise<CommandResult> {
    return this.run(this.compose[0]!, [...this.compose.slice(1), ...args], timeoutMs)
  }

  containers(): ContainerState[] {
    return composeContainers(this.root, this.compose, this.env)
  }

  /** Every container of the project, found by compose's label (also those compose forgot). */
  labelledContainerIds(): string[] {
    const result = spawnSync(
      'docker',
      ['ps', '--all', '--quiet', '--filter', `label=com.docker.compose.project=${this.project}`],
      { encoding: 'utf8', timeout: 30_000 },
    )
    return result.stdout.split('\n').filter(Boolean)
  }

  /** A container's JSON log lines so far (`docker logs`), other output skipped. */
  logLines(containerId: string): LogLine[] {
    const logs = spawnSync('docker', ['logs', containerId], { encoding: 'utf8', timeout: 30_000 })
    const lines: LogLine[] = []
    for (const text of `${logs.stdout}\n${logs.stderr}`.split('\n')) {
      try {
        const line = JSON.parse(text) as LogLine
        if (typeof line.msg === 'string') lines.push(line)
      } catch {}
    }
    return lines
  }

  /** The phone book key a container's instance registered under (its last "registered in etcd" line). */
  registeredKey(containerId: string): string {
    const key = this.logLines(containerId)
      .filter((line) => line.msg === 'registered in etcd' && typeof line.key === 'string')
      .at(-1)?.key as string | undefined
    if (!key) throw new Error(`container ${containerId} logged no "registered in etcd" line`)
    return key
  }

  private run(command: string, args: string[], timeoutMs: number): Promise<CommandResult> {
    const started = Date.now()
    appendFileSync(this.logFile, `\n$ ${command} ${args.join(' ')}\n`)
    return new Promise((resolve, reject) => {
      const child = spawn(command, args, {
        cwd: this.root,
        env: this.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let output = ''
      const collect = (chunk: Buffer) => {
        output += chunk.toString()
        appendFileSync(this.logFile, chunk)
      }
      child.stdout.on('data', collect)
      child.stderr.on('data', collect)
      const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs)
      child.once('error', (err) => {
        clearTimeout(timer)
        reject(err)
      })
      child.once('close', (code) => {
        clearTimeout(timer)
        resolve({ code, output, ms: Date.now() - started })
      })
    })
  }
}
