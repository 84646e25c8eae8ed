import type { ServerMetrics } from '../telemetry/server-metrics.js'
import type { Invoker } from './invoker.js'

/**
 * The invoker with every call counted and timed (telemetry/server-metrics.ts). Every lean
 * transport (RPC stream, `/_rpc` requests and batches) calls procedures through it, so one
 * wrapper measures them all; refusals before a procedure runs are not calls and are not counted.
 */
export function measuredInvoker(invoker: Invoker, metrics: ServerMetrics): Invoker {
  return {
    ...invoker,
    async call(path, kind, input, deadlineMs, batchIndex, metadata, caller) {
      const started = performance.now()
      const outcome = await invoker.call(
        path,
        kind,
        input,
        deadlineMs,
        batchIndex,
        metadata,
        caller,
      )
      metrics.observe(path, kind, outcome.status, (performance.now() - started) / 1000)
      return outcome
    },
  }
}
