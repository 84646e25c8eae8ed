import type { ProcedureKind } from '../protocol/procedure-kind.js'
import type { ServerMetrics } from '../telemetry/server-metrics.js'
import { type Invoker, type Outcome, settlesLater } from './invoker.js'

/**
 * The invoker with every call counted and timed (telemetry/server-metrics.ts). Every lean
 * transport (RPC stream, `/_rpc` requests and batches) calls procedures through it, so one
 * wrapper measures them all; refusals before a procedure runs are not calls and are not counted.
 * A call that finished synchronously is measured and handed back synchronously too.
 */
export function measuredInvoker(invoker: Invoker, metrics: ServerMetrics): Invoker {
  const observed = (path: string, kind: ProcedureKind, started: number, outcome: Outcome) => {
    metrics.observe(path, kind, outcome.status, (performance.now() - started) / 1000)
    return outcome
  }
  return {
    ...invoker,
    call(path, kind, input, deadlineMs, batchIndex, metadata, caller) {
      const started = performance.now()
      const outcome = invoker.call(path, kind, input, deadlineMs, batchIndex, metadata, caller)
      if (settlesLater(outcome)) {
        return outcome.then((settled) => observed(path, kind, started, settled))
      }
      return observed(path, kind, started, outcome)
    },
  }
}
