import type { Logger } from 'pino'

/** Who is answering: the instance a procedure runs in. */
export interface InstanceInfo {
  /** Unique id of this running instance (also the last segment of its phone book key). */
  readonly id: string
  /** The role this instance serves. */
  readonly role: string
  /** The URL other services reach this instance at (its advertised address). */
  readonly url: string
}

/** What every procedure receives as `ctx`. `TDeps` is the typed client of each declared dependency. */
export interface ServiceContext<TDeps = {}> {
  readonly instance: InstanceInfo
  /** A pino child logger bound to this instance and request. */
  readonly log: Logger
  /** One typed client per declared dependency role: `await ctx.deps.cache.get({ key })`. */
  readonly deps: TDeps
}
