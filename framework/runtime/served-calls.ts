/**
 * Calls served per procedure since the instance started: every call to an existing procedure,
 * whatever its outcome, on any transport (RPC stream, `/_rpc` requests, tRPC at `/trpc`). The
 * `stopped` log line carries them, so what an instance did can be checked after it is gone.
 */
export class ServedCalls {
  readonly #byPath = new Map<string, number>()

  constructor(private readonly procedures: Readonly<Record<string, unknown>>) {}

  /** Counts one call of `path`, if the service has such a procedure. */
  count(path: string): void {
    if (!Object.hasOwn(this.procedures, path)) return
    this.#byPath.set(path, (this.#byPath.get(path) ?? 0) + 1)
  }

  /** The counts so far, by procedure path (procedures never called are left out). */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.#byPath)
  }
}
