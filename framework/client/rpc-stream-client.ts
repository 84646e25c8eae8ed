import { parseAnswer } from '../protocol/answer.js'
import { AUTH_FRAME_PATH, markTokenRefused } from '../protocol/call-token.js'
import { encodeMetadata } from '../protocol/metadata.js'
import { encodeCallFrame, serviceFrameKind } from '../protocol/stream-frames.js'
import { inputJson, type StreamCall, StreamCalls } from './stream-calls.js'
import { StreamSocket } from './stream-socket.js'

export type { StreamCall } from './stream-calls.js'

/** Calls already handed back once after a 401 upgrade: never twice (two tokens, both refused). */
const resentOnce = new WeakSet<StreamCall>()

/** How long a liveness probe may go unanswered before the connection is dropped. */
const PROBE_TIMEOUT_MS = 2_000

export type StreamState = 'connecting' | 'open' | 'draining' | 'closed'

/**
 * One upgraded connection to one instance, many calls in flight on it (the frames:
 * protocol/stream-frames.ts). Calls made before the upgrade is answered wait for it; if the
 * service does not speak the stream (a peer in another language, an older version) they are
 * handed back unsent through `onUnsupported`. When the instance leaves (goaway, a 503 upgrade
 * answer, `release`), calls not written yet are rerouted and those written are answered.
 */
export class RpcStreamClient<C extends StreamCall = StreamCall> {
  state: StreamState = 'connecting'
  readonly #socket: StreamSocket
  readonly #calls = new StreamCalls<C>()
  #probeTimer: NodeJS.Timeout | undefined
  /** The call token the service holds for this connection (sent at the upgrade, then renewed). */
  #token: string | undefined
  /** The id of the last `_auth` frame sent: its answer says whether the service took the token. */
  #renewalId: number | undefined

  constructor(
    readonly url: URL,
    token: string | undefined,
    private readonly onUnsupported: (calls: C[]) => void,
    /**
     * Calls that waited on this stream with another token than the one its upgrade carried, when
     * the upgrade was refused (401): theirs was never checked; they go on a new stream, once.
     */
    private readonly onResend: (calls: C[]) => void = () => undefined,
  ) {
    this.#token = token
    this.#socket = new StreamSocket(
      url,
      {
        open: () => this.#onOpen(),
        line: (line) => this.#answer(line),
        refused: (status) => this.#onRefused(status),
        close: (err, connected) => this.#onClose(err, connected),
      },
      token,
    )
  }

  /** Calls in flight or waiting on this connection. */
  get busy(): number {
    return this.#calls.size
  }

  send(call: C): void {
    if (this.state === 'connecting') {
      this.#calls.wait(call)
      return
    }
    if (this.state === 'draining') {
      // The instance said goaway: it answers what it has, and gets nothing new.
      call.reroute(`${this.url.origin} is shutting down (goaway)`)
      return
    }
    if (this.state === 'closed') {
      call.fail(`connection to ${this.url.origin} is closed`, false)
      return
    }
    const input = inputJson(call)
    if (input === undefined) return
    if (call.token !== undefined && call.token !== this.#token) this.#renew(call.token)
    const id = this.#calls.nextId()
    call.sentAt = performance.now()
    call.frameId = id
    this.#calls.add(id, call)
    call.abandoned = this.#onAbandoned
    this.#socket.send(
      encodeCallFrame(
        id,
        call.path,
        call.kind,
        input,
        call.deadlineMs,
        encodeMetadata(call.metadata),
      ),
    )
  }

  /**
   * A sent call was given up on (a timeout) with nothing heard since it was sent: a slow
   * procedure, or a connection that died without saying so (a black-holed peer). Probe to tell
   * them apart. One function per stream, not a closure per call.
   */
  readonly #onAbandoned = (call: StreamCall): void => {
    if (!this.#calls.remove(call.frameId)) return
    if (this.#socket.lastReceived < (call.sentAt ?? 0)) this.#probe()
    this.#maybeEnd()
  }

  /**
   * The caller minted a fresh token (the one the connection holds is near its expiry): the
   * service gets it in an `_auth` frame ahead of the call that carries it. Its answer is not
   * waited for (frames run in order of arrival; a service without tokens answers 404).
   */
  #renew(token: string): void {
    this.#token = token
    this.#renewalId = this.#calls.nextId()
    this.#socket.send(
      encodeCallFrame(
        this.#renewalId,
        AUTH_FRAME_PATH,
        'mutation',
        JSON.stringify({ token }),
        Number.NaN,
      ),
    )
  }

  /**
   * Sends a frame for the empty path (every service answers it, with NOT_FOUND); if no byte comes
   * back within PROBE_TIMEOUT_MS the connection is dropped, failing its calls (as sent) so they
   * are retried or reported, and the next call reconnects.
   */
  #probe(): void {
    if (this.#probeTimer || this.state !== 'open') return
    const sentAt = performance.now()
    this.#socket.send(encodeCallFrame(this.#calls.nextId(), '', 'query', 'null', Number.NaN))
    this.#socket.flush()
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined
      if (this.#socket.lastReceived < sentAt && this.state !== 'closed') {
        this.#socket.destroy(
          Object.assign(new Error('no answer on the RPC stream'), { code: 'ETIMEDOUT' }),
        )
      }
    }, PROBE_TIMEOUT_MS)
    this.#probeTimer.unref()
  }

  /**
   * The instance left the phone book: calls still waiting for the upgrade go elsewhere at once
   * (`message` says why), calls written are answered before the connection ends.
   */
  release(message: string): void {
    if (this.state === 'connecting') {
      this.state = 'closed'
      const waiting = this.#calls.takeWaiting()
      this.#socket.destroy()
      for (const call of waiting) call.reroute(message)
      return
    }
    if (this.state === 'open') this.state = 'draining'
    this.#maybeEnd()
  }

  destroy(): void {
    this.#socket.destroy()
  }

  /** The upgrade was answered: the waiting calls go out. */
  #onOpen(): void {
    this.state = 'open'
    for (const call of this.#calls.takeWaiting()) if (!call.settled) this.send(call)
  }

  #onRefused(status: string | undefined): void {
    // 503: the instance is draining (the waiting calls go elsewhere); 401: it refused the call
    // token (each waiting call gets that answer; the next call tries a new stream); anything
    // else: no stream spoken here.
    if (status === '503') {
      const message = `${this.url.origin} is shutting down (503 to the stream upgrade)`
      for (const call of this.#calls.takeWaiting()) call.reroute(message)
    } else if (status === '401') {
      // Closed first: a call handed back opens a new stream with its own token.
      this.state = 'closed'
      const refused = this.#token
      const answer = { status: 401, body: unauthorizedBody(this.url.origin) }
      const resend: C[] = []
      for (const call of this.#calls.takeWaiting()) {
        if (call.settled) continue
        // Signed otherwise (a rotation's retry with the previous secret beside calls signed with
        // the current one): not what was refused.
        if (call.token !== refused && !resentOnce.has(call)) {
          resentOnce.add(call)
          resend.push(call)
        } else call.resolve(answer)
      }
      if (resend.length > 0) this.onResend(resend)
    } else this.#unsupported()
    this.state = 'closed'
  }

  #unsupported(): void {
    const waiting = this.#calls.takeWaiting()
    this.state = 'closed'
    this.#socket.destroy()
    this.onUnsupported(waiting.filter((call) => !call.settled))
  }

  #answer(line: string): void {
    const frame = parseAnswer(line)
    if (typeof frame === 'string') {
      this.#protocolError(`${this.url.origin} sent ${frame}`)
      return
    }
    const [id, status, body] = frame
    switch (serviceFrameKind(frame)) {
      case 'goaway':
        this.state = 'draining'
        this.#maybeEnd()
        return
      case 'refusal': {
        const message = (body as { error?: { message?: string } })?.error?.message
        this.#protocolError(`${this.url.origin} refused the RPC stream: ${status} ${message ?? ''}`)
        return
      }
      case 'answer': {
        if (id === this.#renewalId) {
          this.#renewalId = undefined
          // Not taken (shed, or refused during a rotation): the next call sends it again. A
          // service without call tokens answers 404, and holds no token to renew.
          if (status !== 200 && status !== 404) this.#token = undefined
          return
        }
        const call = this.#calls.take(id)
        if (!call) return
        call.resolve({ status, body })
        this.#maybeEnd()
      }
    }
  }

  #protocolError(message: string): void {
    for (const call of this.#calls.takeSent()) call.fail(message, true)
    this.state = 'closed'
    this.#socket.destroy()
  }

  #maybeEnd(): void {
    if (this.state === 'draining' && this.#calls.sent === 0) {
      this.state = 'closed'
      this.#socket.end()
    }
  }

  #failWaiting(message: string, sent: boolean, cause?: unknown): void {
    for (const call of this.#calls.takeWaiting()) call.fail(message, sent, cause)
  }

  #onClose(err: Error | undefined, connected: boolean): void {
    const wasConnecting = this.state === 'connecting'
    if (wasConnecting && connected && err === undefined && this.#calls.waiting > 0) {
      // Connected, then closed cleanly without answering the upgrade: something that does not
      // speak the stream (a proxy dropping unknown upgrades). Requests from now on; these were
      // not sent. (A reset or the handshake timing out is a failure, not an answer: the calls
      // waiting go elsewhere and the next call tries the stream again.)
      this.#unsupported()
      return
    }
    this.state = 'closed'
    const reason = err ? ((err as { code?: string }).code ?? err.message) : 'connection closed'
    // Calls not written yet never reached the service; written ones may have.
    this.#failWaiting(`cannot reach ${this.url.origin}: ${reason}`, false, err)
    for (const call of this.#calls.takeSent()) {
      call.fail(`connection to ${this.url.origin} lost: ${reason}`, !wasConnecting, err)
    }
  }
}

/**
 * tRPC's UNAUTHORIZED error body, for the calls that waited on a stream refused with 401: a token
 * refusal (only the token check answers an upgrade 401), so nothing ran.
 */
function unauthorizedBody(origin: string) {
  return markTokenRefused({
    error: {
      message: `${origin} refused the call token at the RPC stream upgrade (401); is FRAMEWORK_SECRET the namespace's?`,
      code: -32001,
      data: { code: 'UNAUTHORIZED', httpStatus: 401 },
    },
  })
}
