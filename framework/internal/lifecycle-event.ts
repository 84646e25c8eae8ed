/**
 * An instance's lifecycle steps, in order. Each is logged as the `event` field of its JSON log
 * line (the message stays for people): `framework dev` and tests follow instances by the field.
 */
export const LIFECYCLE_EVENTS = [
  'starting',
  'listening',
  'waiting-for-deps',
  'registered',
  'registration-lost',
  'stopping',
  'deregistered',
  'drained',
  'stopped',
] as const

export type LifecycleEvent = (typeof LIFECYCLE_EVENTS)[number]

/** The field to spread into a lifecycle log line: `log.info({ ...lifecycle('listening'), url }, 'listening')`. */
export function lifecycle(event: LifecycleEvent): { event: LifecycleEvent } {
  return { event }
}

/** The lifecycle event of a parsed log line, if it carries one. */
export function lifecycleEventOf(line: { event?: unknown }): LifecycleEvent | undefined {
  const { event } = line
  return (LIFECYCLE_EVENTS as readonly unknown[]).includes(event)
    ? (event as LifecycleEvent)
    : undefined
}
