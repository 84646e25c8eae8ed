import type { IncomingMessage } from 'node:http'
import { refusal, WholeRefusal } from './answers.js'
import { isJsonBody, parseJson, readBody } from './http-body.js'
import type { CallsRoute } from './routes.js'

/**
 * Each call's input: from `?input=` (GET) or the JSON body (POST); a tRPC batch's by position
 * (`{"0": …, "1": …}`, a missing one undefined). A body over `maxBodyBytes`, not JSON by its
 * content type, or not parseable refuses the whole request (`WholeRefusal`).
 */
export async function readCallInputs(
  req: IncomingMessage,
  route: CallsRoute,
  count: number,
  maxBodyBytes: number,
): Promise<unknown[]> {
  let text: string | null
  if (req.method === 'POST') {
    const body = await readBody(req, maxBodyBytes)
    if (body === 'too-large') {
      throw new WholeRefusal(
        refusal(
          'PAYLOAD_TOO_LARGE',
          `request body is over the gateway's limit of ${maxBodyBytes} bytes; send less`,
          undefined,
        ),
        {},
        true,
      )
    }
    if (body !== '' && !isJsonBody(req)) {
      throw new WholeRefusal(
        refusal(
          'UNSUPPORTED_MEDIA_TYPE',
          'send the input as JSON with content-type: application/json',
          undefined,
        ),
      )
    }
    text = body === '' ? null : body
  } else {
    text = route.params.get('input')
  }
  if (text === null) return new Array(count).fill(undefined)
  const parsed = parseJson(text)
  if ('error' in parsed) {
    throw new WholeRefusal(
      refusal(
        'BAD_REQUEST',
        `request input is not valid JSON (${parsed.error}); send a JSON body or ?input=<url-encoded JSON>`,
        undefined,
      ),
    )
  }
  if (!(route.kind === 'trpc' && route.batch)) return [parsed.value]
  const byIndex = parsed.value
  if (typeof byIndex !== 'object' || byIndex === null) {
    throw new WholeRefusal(
      refusal(
        'BAD_REQUEST',
        'a batch input is a JSON object of inputs by call index: {"0": <input>, "1": <input>}',
        undefined,
      ),
    )
  }
  return Array.from({ length: count }, (_, index) =>
    Object.hasOwn(byIndex, index) ? (byIndex as Record<number, unknown>)[index] : undefined,
  )
}
