import type { LogLine, SpawnedInstance } from './instance.js'

/** One 'instance ejected' line of a caller: when, and how long the instance was put out for. */
export interface Ejection {
  at: number
  backoffMs: number
  reason: string
}

/** Where a caller's log lines come from: a spawned instance, or a function that reads them. */
export type LogSource = SpawnedInstance | (() => readonly LogLine[])

function linesOf(source: LogSource): readonly LogLine[] {
  return typeof source === 'function' ? source() : source.lines
}

/**
 * The caller's ejections of instance `id` (its client logs one each time a call to `id` fails to
 * connect while `id` was in rotation), from its log line `after` on. A dead instance the caller
 * still lists keeps being tried whenever its ejection runs out: these lines are the caller's
 * connection attempts to it that failed.
 */
export function ejectionsOf(caller: LogSource, id: string, after = 0): Ejection[] {
  return linesOf(caller)
    .slice(after)
    .filter((line) => line.msg === 'instance ejected' && line.instance === id)
    .map((line) => ({
      at: line.time as number,
      backoffMs: line.backoffMs as number,
      reason: String(line.reason),
    }))
}

/**
 * Waits (under load, bounded) until `caller` is no longer trying instance `id`: the time since
 * its last ejection of `id` exceeds the backoff that ejection set plus `marginMs`. A caller that
 * still listed `id` would have tried it again by then, been refused and ejected it again, so
 * the wait goes on (ejections back off up to 30 s: the bound is past that). Resolves with every
 * ejection of `id` from log line `after` on; the test then asserts when the last one was.
 */
export async function whenNoLongerTried(
  caller: LogSource,
  id: string,
  options: { after?: number; marginMs?: number; timeoutMs?: number; pollMs?: number } = {},
): Promise<Ejection[]> {
  const { after = 0, marginMs = 1_500, timeoutMs = 45_000, pollMs = 100 } = options
  const started = Date.now()
  for (;;) {
    const ejections = ejectionsOf(caller, id, after)
    const last = ejections.at(-1)
    if (!last || Date.now() > last.at + last.backoffMs + marginMs) return ejections
    if (Date.now() - started > timeoutMs) {
      throw new Error(
        `${id} was still being tried after ${timeoutMs} ms: ${ejections.length} ejections, the last at ${new Date(last.at).toISOString()}`,
      )
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs))
  }
}
