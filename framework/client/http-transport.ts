import type { CallMetadata } from '../protocol/metadata.js'
import type { ProcedureKind } from '../protocol/procedure-kind.js'
import { sendBatch } from './batch-request.js'
import { type PendingCall, PendingTransportCall, type TimedAnswer } from './pending-call.js'
import { RequestPool } from './request-pool.js'
import { RpcStreamClient } from './rpc-stream-client.js'
import { type RequestTarget, sendSingle } from './single-request.js'

export type { HttpAnswer, TimedAnswer } from './pending-call.js'
export { TransportError } from './transport-error.js'

/** Calls sent in one batch request at most (services accept 128 by default). */
export const MAX_CLIENT_BATCH = 64

/** The connections and the not-yet-sent calls of one instance. */
interface Channel extends RequestTarget {
  queue: PendingCall[]
  flushScheduled: boolean
  /** The RPC stream to the instance, while one is open or opening. */
  stream: RpcStreamClient<PendingCall> | undefined
  /** The instance answered the upgrade with something else: requests only from now on. */
  noStream: boolean
  /** Plain http: at the origin (no path prefix, no TLS): where the stream is tried. */
  streamable: boolean
}

export interface TransportOptions {
  /**
   * Use the RPC stream (one upgraded connection per instance, frames multiplexed) where the
   * service speaks it; otherwise requests (single and micro-batched). Default true.
   */
  stream?: boolean
}

/**
 * The framework's client transport: the table of instances (channels) and where each call goes.
 * By default each instance gets one RPC stream (rpc-stream-client.ts: an upgraded connection
 * carrying newline-delimited JSON frames, many calls in flight). Services that do not speak it get
 * requests: undici on a keep-alive pool per instance, no WHATWG `Request`/`Response`; calls to the
 * same instance queued in the same tick go out as one batch request (batch-request.ts, at most
 * `MAX_CLIENT_BATCH` each), whose answers stream back one line per call as each completes; a lone
 * call is a plain tRPC-protocol request (single-request.ts).
 */
export class HttpTransport {
  readonly #channels = new Map<string, Channel>()
  readonly #useStream: boolean

  constructor(options: TransportOptions = {}) {
    this.#useStream = options.stream ?? true
  }

  /**
   * Sends one call. `deadlineMs` and `metadata` travel to the service (its own nested calls get
   * no longer, and carry the metadata on); after `timeoutMs` the call is given up (a `timeout`
   * TransportError, counted as sent), and when `signal` aborts, an `aborted` one. `token` is
   * the caller's call token for the instance's role (a header, or the stream's upgrade).
   */
  send(
    url: string,
    kind: ProcedureKind,
    path: string,
    input: unknown,
    deadlineMs: number,
    timeoutMs: number,
    signal?: AbortSignal,
    metadata?: CallMetadata,
    token?: string,
  ): Promise<TimedAnswer> {
    const channel = this.#channel(url)
    return new Promise<TimedAnswer>((resolve, reject) => {
      const call = new PendingTransportCall(
        url,
        kind,
        path,
        input,
        Math.max(0, Math.floor(deadlineMs)),
        metadata,
        token,
        timeoutMs,
        resolve,
        reject,
      )
      if (signal && !call.listen(signal)) return
      if (this.#useStream && !channel.noStream && channel.streamable) {
        return this.#stream(channel, token).send(call)
      }
      channel.queue.push(call)
      if (!channel.flushScheduled) {
        channel.flushScheduled = true
        process.nextTick(() => this.#flush(channel))
      }
    })
  }

  /**
   * An instance left the phone book: it gets no new call, and calls not yet written to it (queued,
   * or waiting for the stream's upgrade) go elsewhere now. Calls written are answered (it drains)
   * before its connections close.
   */
  release(url: string): void {
    const channel = this.#channels.get(url)
    if (!channel) return
    this.#channels.delete(url)
    const message = `${url} left the phone book`
    channel.stream?.release(message)
    const queued = channel.queue
    channel.queue = []
    for (const call of queued) call.reroute(message)
    // Requests already handed to the pool are written and answered before it closes.
    void channel.pool.close().catch(() => undefined)
  }

  /** RPC streams open now (upgraded, or draining after a goaway). */
  get openStreams(): number {
    let open = 0
    for (const channel of this.#channels.values()) {
      const state = channel.stream?.state
      if (state === 'open' || state === 'draining') open++
    }
    return open
  }

  async close(): Promise<void> {
    const channels = [...this.#channels.values()]
    this.#channels.clear()
    for (const channel of channels) channel.stream?.destroy()
    await Promise.all(channels.map(({ pool }) => pool.destroy().catch(() => undefined)))
  }

  /**
   * The stream to the channel's instance while one is opening, open or draining (which reroutes
   * new calls: the instance said goaway); a new one once it closed.
   */
  #stream(channel: Channel, token: string | undefined): RpcStreamClient<PendingCall> {
    const current = channel.stream
    if (current && current.state !== 'closed') return current
    const stream = new RpcStreamClient<PendingCall>(
      new URL(channel.url),
      token,
      (unsent) => {
        // The service does not speak the stream: requests from now on, starting with these.
        channel.noStream = true
        if (channel.stream === stream) channel.stream = undefined
        // Released meanwhile: its pool is closed.
        if (this.#reroutedIfReleased(channel, unsent)) return
        channel.queue.push(...unsent)
        if (unsent.length > 0 && !channel.flushScheduled) {
          channel.flushScheduled = true
          process.nextTick(() => this.#flush(channel))
        }
      },
      (resend) => {
        // Calls whose token the refused upgrade never checked: each on a stream with its own.
        if (this.#reroutedIfReleased(channel, resend)) return
        for (const call of resend) this.#stream(channel, call.token).send(call)
      },
    )
    channel.stream = stream
    return stream
  }

  /**
   * Whether the channel was released meanwhile (its instance left the phone book); if so, `calls`
   * handed back by its stream are rerouted, as `release()` reroutes its queue.
   */
  #reroutedIfReleased(channel: Channel, calls: readonly PendingCall[]): boolean {
    if (this.#channels.get(channel.url) === channel) return false
    for (const call of calls) call.reroute(`${channel.url} left the phone book`)
    return true
  }

  #channel(url: string): Channel {
    let channel = this.#channels.get(url)
    if (!channel) {
      const parsed = new URL(url)
      channel = {
        url,
        pool: new RequestPool(parsed.origin),
        basePath: parsed.pathname.replace(/\/$/, ''),
        queue: [],
        flushScheduled: false,
        stream: undefined,
        noStream: false,
        streamable: parsed.protocol === 'http:' && parsed.pathname.replace(/\/$/, '') === '',
      }
      this.#channels.set(url, channel)
    }
    return channel
  }

  #flush(channel: Channel): void {
    channel.flushScheduled = false
    const calls = channel.queue.filter((call) => !call.settled)
    channel.queue = []
    for (let start = 0; start < calls.length; start += MAX_CLIENT_BATCH) {
      const group = calls.slice(start, start + MAX_CLIENT_BATCH)
      if (group.length === 1) void sendSingle(channel, group[0]!)
      else void sendBatch(channel, group)
    }
  }
}
