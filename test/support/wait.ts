/**
 * Polls `check` every `intervalMs` until it returns true; resolves with the elapsed ms or rejects
 * after `timeoutMs`. A check that throws (etcd unreadable, say) counts as "not yet", never as
 * done; the last error is named in the timeout message.
 */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
  intervalMs = 25,
): Promise<number> {
  const started = Date.now()
  let lastError: unknown
  for (;;) {
    try {
      if (await check()) return Date.now() - started
    } catch (err) {
      lastError = err
    }
    if (Date.now() - started > timeoutMs) {
      const cause = lastError === undefined ? '' : ` (last check failed: ${String(lastError)})`
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${cause}`)
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}
