import type { Logger } from 'pino'
import type { CallMetadata } from '../protocol/metadata.js'

/** Who is answering: the instance a procedure runs in. */
export interface InstanceInfo {
  /** Unique id of this running instance (also the last segment of its phone book key). */
  readonly id: string
  /** The role this instance serves. */
  readonly role: string
  /** The URL other services reach this instance at (its advertised address). */
  readonly url: string
}

/**
 * The end user a call is made for: the JSON object the gateway's `authenticate()` returned,
 * passed on to every nested call. With call tokens on (`FRAMEWORK_AUTH=token`) it comes signed
 * by the calling service and is checked before the call runs; with them off it is asserted by
 * the caller, not signed: do not grant on it for calls that may come from elsewhere.
 */
export type Caller = Readonly<Record<string, unknown>>

/** What every procedure receives as `ctx`. `TDeps` is the typed client of each declared dependency. */
export interface ServiceContext<TDeps = {}> {
  readonly instance: InstanceInfo
  /**
   * This call's pino child logger (made on first use): the instance's fields plus `procedure`,
   * `requestId` when the call has one, and `trace_id` (with `span_id` when traced).
   */
  readonly log: Logger
  /** One typed client per declared dependency role: `await ctx.deps.cache.get({ key })`. */
  readonly deps: TDeps
  /** The call's request id (`x-request-id`), made by the gateway; carried on by `ctx.deps` calls. */
  readonly requestId: string | undefined
  /** The end user the call is made for (see `Caller`); undefined when no one was authenticated. */
  readonly caller: Caller | undefined
  /**
   * The role that made the call (`api`, `gateway`, `cli`), as its call token proved; undefined
   * when call tokens are off (`FRAMEWORK_AUTH=none`), when nothing proves who called.
   */
  readonly callerRole?: string | undefined
  /** Everything the call carried besides its input (lower-case header names → values). */
  readonly metadata: CallMetadata
}
