import { execFileSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { REPO_ROOT } from './instance.js'
import { waitFor } from './wait.js'

/** Where terminal tests keep what the screen showed (.tmp/tmux-<name>.txt). */
export const CAPTURE_DIR = join(REPO_ROOT, '.tmp')

let sessions = 0

/**
 * A real terminal for a CLI test: a detached tmux session on a private socket (so only this
 * session's server is ever touched), typed into with send-keys and read with capture-pane.
 * The command runs under `sh -c` and prints `EXIT=<code>` when it ends; the pane stays open.
 */
export class TmuxSession {
  readonly socket = `framework-test-${process.pid}-${++sessions}`
  readonly name = 'cli'
  #closed = false

  constructor(command: string, cwd: string, env: Record<string, string> = {}) {
    const exports = Object.entries(env)
      .map(([key, value]) => `export ${key}=${shellQuote(value)}; `)
      .join('')
    // The shell traps SIGINT (Ctrl-C goes to the whole foreground group) so it outlives the
    // command and prints its exit code; the command itself gets the default disposition.
    const script = `trap 'true' INT; cd ${shellQuote(cwd)} && ${exports}${command}; echo "EXIT=$?"; sleep 86400`
    this.#tmux(['new-session', '-d', '-x', '200', '-y', '50', '-s', this.name, 'sh', '-c', script])
  }

  #tmux(args: string[]): string {
    return execFileSync('tmux', ['-L', this.socket, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    })
  }

  /** Types `text` literally (no key names). */
  type(text: string): void {
    this.#tmux(['send-keys', '-t', this.name, '-l', text])
  }

  /** Presses keys by tmux name: Enter, Tab, Down, Space, C-c, C-d, BSpace, C-u. */
  press(...keys: string[]): void {
    for (const key of keys) this.#tmux(['send-keys', '-t', this.name, key])
  }

  /** The screen now, blank lines dropped. */
  screen(): string {
    return this.#tmux(['capture-pane', '-p', '-J', '-S', '-200', '-t', this.name])
      .split('\n')
      .filter((line) => line.trim() !== '')
      .join('\n')
  }

  /** Resolves with the screen once it matches `pattern`; the timeout names what it showed. */
  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    let screen = ''
    try {
      await waitFor(
        `${pattern} on the screen`,
        () => {
          screen = this.screen()
          return pattern.test(screen)
        },
        timeoutMs,
        100,
      )
    } catch (err) {
      throw new Error(`${(err as Error).message}; the screen:\n${screen}`)
    }
    return screen
  }

  /** The exit code the command printed, once it has ended. */
  async exitCode(timeoutMs = 30_000): Promise<number> {
    const screen = await this.waitFor(/EXIT=\d+/, timeoutMs)
    return Number(/EXIT=(\d+)/.exec(screen)?.[1])
  }

  /** Keeps the screen as .tmp/tmux-<name>.txt (read it when a test fails). */
  save(name: string): string {
    mkdirSync(CAPTURE_DIR, { recursive: true })
    const file = join(CAPTURE_DIR, `tmux-${name}.txt`)
    writeFileSync(file, `${this.screen()}\n`)
    return file
  }

  /** Ends this session (and with it its private server); the command gets SIGHUP. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    try {
      this.#tmux(['kill-session', '-t', this.name])
    } catch {
      // Already gone.
    }
    // The private socket is this session's alone; tmux can leave the file behind.
    const uid = process.getuid?.() ?? 0
    rmSync(join(process.env.TMUX_TMPDIR ?? '/tmp', `tmux-${uid}`, this.socket), { force: true })
  }
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`
}
