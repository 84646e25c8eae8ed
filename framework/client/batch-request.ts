import { StringDecoder } from 'node:string_decoder'
import { parseAnswer } from '../protocol/answer.js'
import { encodeBatch } from '../protocol/batch.js'
import { TOKEN_HEADER } from '../protocol/call-token.js'
import { BATCH_PATH } from '../protocol/paths.js'
import type { PendingCall } from './pending-call.js'
import { parseJson, type RequestTarget, sendSingle } from './single-request.js'
import { inputJson } from './stream-calls.js'
import { connectionError, TransportError } from './transport-error.js'

/**
 * Calls to one instance as one batch request (protocol/batch.ts); each call is answered from its
 * line as soon as that line comes. A batch over the service's limit is sent again as two halves.
 */
export async function sendBatch(target: RequestTarget, calls: PendingCall[]): Promise<void> {
  // One token header covers a batch: calls signed differently (a call sent again with the
  // previous secret during a rotation, beside calls signed with the current one) go apart.
  const token = calls[0]!.token
  if (calls.some((call) => call.token !== token)) {
    const groups = new Map<string | undefined, PendingCall[]>()
    for (const call of calls) {
      const group = groups.get(call.token)
      if (group) group.push(call)
      else groups.set(call.token, [call])
    }
    for (const group of groups.values()) {
      if (group.length === 1) void sendSingle(target, group[0]!)
      else void sendBatch(target, group)
    }
    return
  }
  let body: string
  try {
    body = encodeBatch(calls)
  } catch {
    // An input JSON cannot carry: that call fails (not sent), the others go without it.
    const sendable = calls.filter((call) => inputJson(call) !== undefined)
    if (sendable.length === 1) void sendSingle(target, sendable[0]!)
    else if (sendable.length > 1) void sendBatch(target, sendable)
    return
  }
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
    const pool = await target.pool.get()
    const response = await pool.request({
      method: 'POST',
      path: `${target.basePath}${BATCH_PATH}`,
      // One token covers the batch: its calls all carry the same one (see above).
      headers:
        token === undefined
          ? { 'content-type': 'application/json' }
          : { 'content-type': 'application/json', [TOKEN_HEADER]: token },
      body,
      signal: abort.signal,
    })
    if (response.statusCode === 413 && calls.length > 1) {
      // Over the service's maxBatchSize (or body limit): nothing ran, so halves are safe to send.
      await response.body.dump()
      const half = Math.ceil(calls.length / 2)
      for (const part of [calls.slice(0, half), calls.slice(half)]) {
        if (part.length === 1) void sendSingle(target, part[0]!)
        else void sendBatch(target, part)
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
    // Decoded as a stream: a character split between two chunks stays whole.
    const decoder = new StringDecoder('utf8')
    for await (const chunk of response.body) {
      buffered += decoder.write(chunk as Buffer)
      let newline = buffered.indexOf('\n')
      while (newline !== -1) {
        const line = parseAnswer(buffered.slice(0, newline))
        buffered = buffered.slice(newline + 1)
        newline = buffered.indexOf('\n')
        if (typeof line !== 'string') calls[line[0]]?.resolve({ status: line[1], body: line[2] })
      }
    }
    const missing = new TransportError(`${target.url} ended a batch answer early`, 'connect', true)
    for (const call of calls) call.reject(missing)
  } catch (err) {
    const error = connectionError(target.url, err)
    for (const call of calls) call.reject(error)
  }
}
