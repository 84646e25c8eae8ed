import type { Logger } from 'pino'

/**
 * Stops a running process gracefully on SIGTERM/SIGINT (exit 0, or 1 if stopping fails), and on
 * its `framework dev` parent going away (FRAMEWORK_PARENT_PID). Whatever hangs (an etcd that does
 * not answer, a call that never returns), the process ends after `limitMs`.
 */
export function stopOnSignal(stop: () => Promise<void>, log: Logger, limitMs: number): void {
  let shuttingDown = false
  // Each exit is reached even when the log cannot be written (stdout gone with the parent).
  const say = (write: () => void) => {
    try {
      write()
    } catch {}
  }
  const shutdown = (signal: string) => {
    // Ctrl-C in a terminal signals the whole process group, and `framework dev` then sends
    // SIGTERM too: later signals must not cut the drain short.
    if (shuttingDown) return
    shuttingDown = true
    say(() => log.info({ signal }, 'signal received'))
    setTimeout(() => {
      say(() => log.error({ limitMs }, 'shutdown did not finish in time; exiting'))
      process.exit(1)
    }, limitMs).unref()
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        say(() => log.error({ err }, 'shutdown failed'))
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', shutdown)
  process.on('SIGINT', shutdown)
  // Started by `framework dev --local`: stop when it is gone (this process was re-parented).
  const parent = Number(process.env.FRAMEWORK_PARENT_PID)
  if (Number.isInteger(parent) && parent > 0) {
    setInterval(() => {
      if (process.ppid !== parent) shutdown('parent exited')
    }, 1_000).unref()
  }
}
