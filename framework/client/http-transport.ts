import { Pool } from 'undici'
import type { ProcedureKind } from '../service/manifest.js'
import { RpcStreamClient, type StreamCall } from './rpc-stream-client.js'

/** Header carrying the caller's remaining deadline (ms) to the callee, for its own nested calls. */
export const DEADLINE_HEADER = 'x-deadline-ms'
/** The services' lean endpoint (see runtime/fast-path.ts); `/trpc` stays tRPC's standard adapter. */
const FAST_PATH = '/_rpc/'
const BATCH_PATH = `${FAST_PATH}_batch`
/** Calls sent in one batch request at most (services accept 128 by default). */
export const MAX_CLIENT_BATCH = 64

/** Connection errors raised before any byte of the request could have reached a server. */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
])

/** One HTTP answer: status and parsed JSON body (undefined if the body was not JSON). */
export interface HttpAnswer {
  status: number
  body: unknown
}

/** An answer and how long it took from the call being sent (not from waiting for a connection). */
export interface TimedAnswer extends HttpAnswer {
  latencyMs: number
}

/** The request got no HTTP answer. `sent: false` proves the server never saw it. */
export class TransportError extends Error {
  constructor(
    message: string,
    readonly reason: 'connect' | 'timeout' | 'aborted',
    readonly sent: boolean,
    options?: { cause: unknown },
  ) {
    super(message, options)
    this.name = 'TransportError'
  }
}

function errorCode(err: unknown): string | undefined {
  let current: unknown = err
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string' && code !== 'UND_ERR_ABORTED') return code
    current = current.cause
  }
  return undefined
}

function connectionError(url: string, err: unknown): TransportError {
  const code = errorCode(err)
  const message = err instanceof Error ? err.message : String(err)
  return new TransportError(
    `cannot reach ${url}: ${code ?? message}`,
    'connect',
    !NOT_SENT_CODES.has(code ?? ''),
    { cause: err },
  )
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * A call waiting for its answer, sent as a request or on the stream (`abandoned` is called when
 * the caller gives up before the answer; `fail` is the stream's connection failure).
 */
interface PendingCall extends StreamCall {
  resolve(answer: HttpAnswer): void
  reject(err: TransportError): void
}

/** The connections and the not-yet-sent calls of one instance. */
interface Channel {
  url: string
  pool: Pool
  basePath: string
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
 * The framework's client transport. By default each instance gets one RPC stream (an upgraded
 * connection carrying newline-delimited JSON frames, many calls in flight; runtime/rpc-stream.ts).
 * Services that do not speak it get requests: undici on a keep-alive pool per instance, no
 * WHATWG `Request`/`Response`; calls to the same instance queued in the same tick go out as one
 * batch request (at most `MAX_CLIENT_BATCH` each), whose answers stream back one line per call as
 * each completes; a lone call is a plain tRPC-protocol request
 * (`GET <url>/_rpc/<path>?input=<json>` or `POST <url>/_rpc/<path>`).
 */
export class HttpTransport {
  readonly #channels = new Map<string, Channel>()
  readonly #useStream: boolean

  constructor(options: TransportOptions = {}) {
    this.#useStream = options.stream ?? true
  }

  /**
   * Sends one call. `deadlineMs` travels to the service (its own nested calls get no longer);
   * after `timeoutMs` the call is given up (a `timeout` TransportError, counted as sent), and
   * when `signal` aborts, an `aborted` one.
   */
  send(
    url: string,
    kind: ProcedureKind,
    path: string,
    input: unknown,
    deadlineMs: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<TimedAnswer> {
    const channel = this.#channel(url)
    return new Promise<TimedAnswer>((resolve, reject) => {
      const giveUp = (reason: 'timeout' | 'aborted') => {
        call.reject(new TransportError(`${reason} calling ${url}`, reason, true))
        call.abandoned?.()
      }
      const onAbort = () => giveUp('aborted')
      const createdAt = performance.now()
      // A timer per call, no AbortController: this is the hot path.
      const timer = setTimeout(giveUp, timeoutMs, 'timeout')
      const done = () => {
        call.settled = true
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
      }
      const call: PendingCall = {
        kind,
        path,
        input,
        deadlineMs: Math.max(0, Math.floor(deadlineMs)),
        settled: false,
        sentAt: undefined,
        abandoned: undefined,
        resolve: (answer) => {
          if (call.settled) return
          done()
          const latencyMs = performance.now() - (call.sentAt ?? createdAt)
          resolve({ status: answer.status, body: answer.body, latencyMs })
        },
        reject: (err) => {
          if (call.settled) return
          done()
          reject(err)
        },
        fail: (message, sent, cause) =>
          call.reject(new TransportError(message, 'connect', sent, { cause })),
      }
      if (signal) {
        if (signal.aborted) return onAbort()
        signal.addEventListener('abort', onAbort, { once: true })
      }
      if (this.#useStream && !channel.noStream && channel.streamable) {
        return this.#stream(channel).send(call)
      }
      channel.queue.push(call)
      if (!channel.flushScheduled) {
        channel.flushScheduled = true
        process.nextTick(() => this.#flush(channel))
      }
    })
  }

  /** Closes the connections of an instance that left the phone book (after their calls). */
  release(url: string): void {
    const channel = this.#channels.get(url)
    if (!channel) return
    this.#channels.delete(url)
    channel.stream?.closeWhenIdle()
    void channel.pool.close().catch(() => undefined)
  }

  async close(): Promise<void> {
    const channels = [...this.#channels.values()]
    this.#channels.clear()
    for (const channel of channels) channel.stream?.destroy()
    await Promise.all(channels.map(({ pool }) => pool.destroy().catch(() => undefined)))
  }

  /** The open (or opening) stream to the channel's instance; a new one if it closed or drains. */
  #stream(channel: Channel): RpcStreamClient<PendingCall> {
    const current = channel.stream
    if (current && (current.state === 'open' || current.state === 'connecting')) return current
    const stream = new RpcStreamClient<PendingCall>(new URL(channel.url), (unsent) => {
      // The service does not speak the stream: requests from now on, starting with these.
      channel.noStream = true
      if (channel.stream === stream) channel.stream = undefined
      if (this.#channels.get(channel.url) !== channel) {
        // Released meanwhile (the instance left the phone book): its pool is closed.
        for (const call of unsent) call.fail(`${channel.url} left the phone book`, false)
        return
      }
      channel.queue.push(...unsent)
      if (unsent.length > 0 && !channel.flushScheduled) {
        channel.flushScheduled = true
        process.nextTick(() => this.#flush(channel))
      }
    })
    channel.stream = stream
    return stream
  }

  #channel(url: string): Channel {
    let channel = this.#channels.get(url)
    if (!channel) {
      const parsed = new URL(url)
      channel = {
        url,
        pool: new Pool(parsed.origin, {
          connections: 64,
          keepAliveTimeout: 10_000,
          connect: { timeout: 2_000 },
        }),
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
      if (group.length === 1) void this.#single(channel, group[0]!)
      else void this.#batch(channel, group)
    }
  }

  async #single(channel: Channel, call: PendingCall): Promise<void> {
    const json = call.input === undefined ? undefined : JSON.stringify(call.input)
    const headers: Record<string, string> = { [DEADLINE_HEADER]: String(call.deadlineMs) }
    let path = `${channel.basePath}${FAST_PATH}${call.path}`
    if (call.kind === 'query') {
      if (json !== undefined) path += `?input=${encodeURIComponent(json)}`
    } else {
      headers['content-type'] = 'application/json'
    }
    const abort = new AbortController()
    call.abandoned = () => abort.abort()
    call.sentAt = performance.now()
    try {
      const response = await channel.pool.request({
        method: call.kind === 'query' ? 'GET' : 'POST',
        path,
        headers,
        body: call.kind === 'mutation' ? (json ?? '') : undefined,
        signal: abort.signal,
      })
      const text = await response.body.text()
      call.resolve({ status: response.statusCode, body: parseJson(text) })
    } catch (err) {
      call.reject(connectionError(channel.url, err))
    }
  }

  async #batch(channel: Channel, calls: PendingCall[]): Promise<void> {
    const body = JSON.stringify(
      calls.map((call) => [call.path, call.kind, call.input, call.deadlineMs]),
    )
    const abort = new AbortController()
    // Every caller gave up (timeouts): stop reading the answer.
    let open = calls.length
    const sentAt = performance.now()
    for (const call of calls) {
      call.sentAt = sentAt
      call.abandoned = () => {
        if (--open === 0) abort.abort()
      }
    }
    try {
      const response = await channel.pool.request({
        method: 'POST',
        path: `${channel.basePath}${BATCH_PATH}`,
        headers: { 'content-type': 'application/json' },
        body,
        signal: abort.signal,
      })
      if (response.statusCode === 413 && calls.length > 1) {
        // Over the service's maxBatchSize (or body limit): nothing ran, so halves are safe to send.
        await response.body.dump()
        const half = Math.ceil(calls.length / 2)
        for (const part of [calls.slice(0, half), calls.slice(half)]) {
          if (part.length === 1) void this.#single(channel, part[0]!)
          else void this.#batch(channel, part)
        }
        return
      }
      if (response.statusCode !== 200) {
        // The batch as a whole was refused (malformed): every call gets that answer.
        const answer = { status: response.statusCode, body: parseJson(await response.body.text()) }
        for (const call of calls) call.resolve(answer)
        return
      }
      let buffered = ''
      for await (const chunk of response.body) {
        buffered += chunk.toString()
        let newline = buffered.indexOf('\n')
        while (newline !== -1) {
          const line = parseJson(buffered.slice(0, newline)) as
            | [number, number, unknown]
            | undefined
          buffered = buffered.slice(newline + 1)
          newline = buffered.indexOf('\n')
          const call = line ? calls[line[0]] : undefined
          call?.resolve({ status: line![1], body: line![2] })
        }
      }
      const missing = new TransportError(
        `${channel.url} ended a batch answer early`,
        'connect',
        true,
      )
      for (const call of calls) call.reject(missing)
    } catch (err) {
      const error = connectionError(channel.url, err)
      for (const call of calls) call.reject(error)
    }
  }
}
