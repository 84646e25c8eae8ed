import type { IncomingHttpHeaders } from 'node:http'
import { TRPCError } from '@trpc/server'
import type { Logger } from 'pino'
import type { Dependencies } from '../client/dependencies.js'
import {
  CALLER_KEY,
  type CallMetadata,
  decodeCaller,
  metadataFromHeaders,
  NO_METADATA,
  propagatedMetadata,
  REQUEST_ID_KEY,
} from '../protocol/metadata.js'
import type { Caller, InstanceInfo, ServiceContext } from '../service/context.js'

/** Builds one call's `ctx` from its remaining deadline (ms) and its metadata. */
export type ContextFactory = (
  deadlineMs: number | undefined,
  metadata: CallMetadata,
) => ServiceContext<unknown>

export interface CallContextOptions {
  instance: InstanceInfo
  log: Logger
  /** Clients of the declared dependencies (undefined when there are none). */
  deps: Dependencies | undefined
}

/**
 * `ctx` for each call, whatever transport brought it: `ctx.deps` calls end by the caller's
 * deadline and carry its propagating metadata (request id, caller) on to the next service.
 */
export function callContextFactory(options: CallContextOptions): ContextFactory {
  const { instance, log, deps } = options
  const noDeps = {}
  return (deadlineMs, metadata) => {
    const deadline = deadlineMs === undefined ? undefined : Date.now() + deadlineMs
    if (metadata === NO_METADATA) {
      // The hot path: no metadata, shared clients when there is no deadline either.
      return {
        instance,
        log,
        deps: deps ? deps.forRequest(deadline) : noDeps,
        requestId: undefined,
        caller: undefined,
        metadata,
      }
    }
    const requestId = metadata[REQUEST_ID_KEY]
    const callerValue = metadata[CALLER_KEY]
    let caller: Caller | undefined
    if (callerValue !== undefined) {
      caller = decodeCaller(callerValue)
      if (caller === undefined) {
        throw new TRPCError({
          code: 'BAD_REQUEST',
          message: `${CALLER_KEY} is not base64url of a JSON object`,
        })
      }
    }
    let callLog: Logger | undefined
    return {
      instance,
      // A child logger only when a procedure logs (its own field: tRPC copies ctx by spreading).
      get log() {
        callLog ??= requestId === undefined ? log : log.child({ requestId })
        return callLog
      },
      deps: deps ? deps.forRequest(deadline, propagatedMetadata(metadata)) : noDeps,
      requestId,
      caller,
      metadata,
    }
  }
}

/** A request's metadata from its headers; a bad one is the caller's 400. */
export function requestMetadata(headers: IncomingHttpHeaders): CallMetadata {
  const metadata = metadataFromHeaders(headers)
  if (typeof metadata === 'string') throw new TRPCError({ code: 'BAD_REQUEST', message: metadata })
  return metadata
}
