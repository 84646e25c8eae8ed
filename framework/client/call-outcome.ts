import type { CallOutcome, DependencyMetrics } from '../telemetry/client-metrics.js'
import { DependencyCallError } from './call-errors.js'

/**
 * How a failed dependency call ended, as a metric label: the framework's failure kind
 * (`no_instance`, `unreachable`, `timeout`, …) or `error` when the callee answered with its own.
 */
export function callOutcome(err: unknown): CallOutcome {
  return err instanceof DependencyCallError ? err.failure.replaceAll('-', '_') : 'error'
}

/** `call`, counted once it settles (`ok` or its outcome). */
export async function measuredCall(
  metrics: DependencyMetrics,
  path: string,
  call: Promise<unknown>,
): Promise<unknown> {
  try {
    const result = await call
    metrics.called(path, 'ok')
    return result
  } catch (err) {
    metrics.called(path, callOutcome(err))
    throw err
  }
}
