import { type FSWatcher, watch } from 'node:fs'
import { dirname, join, relative, sep } from 'node:path'
import { type ImportGraph, roleSources, rolesAffectedBy } from './import-graph.js'

/** Editors write a file in several steps: one restart per burst. */
const RESTART_DEBOUNCE_MS = 300

export interface SourceWatcherOptions {
  appRoot: string
  roles: readonly string[]
  /** Once per burst of changes: the roles to restart, and the changed files (relative to the app). */
  onChange(roles: string[], files: string[]): void
  /** A line of dev's own (`framework …`). */
  say(line: string): void
}

/**
 * Watches what each role loads: services/<role>/ (new files included), every directory of the
 * local modules it imports, and the app root for package.json, the lockfile and tsconfig.json
 * (those restart every role). After a change the affected roles' imports are read again.
 */
export class SourceWatcher {
  readonly #graph: ImportGraph = new Map()
  readonly #watchers = new Map<string, FSWatcher>()
  /** Role → changed files, since the last restart. */
  #pending = new Map<string, Set<string>>()
  #timer: NodeJS.Timeout | undefined
  #closed = false

  private constructor(private readonly options: SourceWatcherOptions) {}

  static async start(options: SourceWatcherOptions): Promise<SourceWatcher> {
    const watcher = new SourceWatcher(options)
    await watcher.#refresh(options.roles)
    return watcher
  }

  /** Each role's sources as last read (for tests and diagnostics). */
  get graph(): ImportGraph {
    return this.#graph
  }

  close(): void {
    this.#closed = true
    clearTimeout(this.#timer)
    for (const watcher of this.#watchers.values()) watcher.close()
    this.#watchers.clear()
  }

  async #refresh(roles: readonly string[]): Promise<void> {
    await Promise.all(
      roles.map(async (role) => {
        try {
          this.#graph.set(role, await roleSources(this.options.appRoot, role))
        } catch {
          // Does not build (a file mid-edit): keep what was known; services/<role>/ stays watched.
          if (!this.#graph.has(role)) this.#graph.set(role, new Set())
        }
      }),
    )
    if (!this.#closed) this.#watchDirectories()
  }

  #watchDirectories(): void {
    const { appRoot } = this.options
    const serviceDirs = [...this.#graph.keys()].map((role) => join(appRoot, 'services', role))
    const insideServiceDir = (dir: string) =>
      serviceDirs.some((serviceDir) => dir === serviceDir || dir.startsWith(serviceDir + sep))
    const wanted = new Map<string, boolean>([[appRoot, false]])
    for (const dir of serviceDirs) wanted.set(dir, true)
    for (const sources of this.#graph.values()) {
      for (const file of sources) {
        const dir = dirname(file)
        if (!wanted.has(dir) && !insideServiceDir(dir)) wanted.set(dir, false)
      }
    }
    for (const [dir, watcher] of this.#watchers) {
      if (!wanted.has(dir)) {
        watcher.close()
        this.#watchers.delete(dir)
      }
    }
    for (const [dir, recursive] of wanted) {
      if (this.#watchers.has(dir)) continue
      try {
        const watcher = watch(dir, { recursive }, (_event, name) => {
          if (name) this.#changed(join(dir, name.toString()))
        })
        // A watched directory removed: forget it; the next refresh watches what is imported then.
        watcher.on('error', () => {
          watcher.close()
          if (this.#watchers.get(dir) === watcher) this.#watchers.delete(dir)
        })
        this.#watchers.set(dir, watcher)
      } catch {
        this.options.say(
          `cannot watch ${relative(appRoot, dir) || '.'} for changes; restart by hand`,
        )
      }
    }
  }

  #changed(file: string): void {
    const roles = rolesAffectedBy(file, this.options.appRoot, this.#graph)
    if (roles.length === 0 || this.#closed) return
    for (const role of roles) {
      const files = this.#pending.get(role) ?? new Set<string>()
      files.add(relative(this.options.appRoot, file))
      this.#pending.set(role, files)
    }
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => this.#flush(), RESTART_DEBOUNCE_MS)
  }

  #flush(): void {
    const pending = this.#pending
    this.#pending = new Map()
    const roles = [...pending.keys()]
    const files = [...new Set([...pending.values()].flatMap((set) => [...set]))].sort()
    this.options.onChange(roles, files)
    // Imports may have changed with the edit: read the restarted roles' sources again.
    void this.#refresh(roles)
  }
}
