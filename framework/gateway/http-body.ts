import type { IncomingMessage } from 'node:http'

/**
 * A request body as text, or `'too-large'` as soon as it passes `maxBytes` (by its
 * Content-Length or while reading; nothing more is read then).
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<string | 'too-large'> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length']) > maxBytes) return resolve('too-large')
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > maxBytes) {
        req.off('data', onData)
        req.pause()
        resolve('too-large')
        return
      }
      chunks.push(chunk)
    }
    req.on('data', onData)
    req.on('end', () => {
      if (size <= maxBytes) resolve(Buffer.concat(chunks).toString('utf8'))
    })
    req.on('error', reject)
  })
}

/** Whether a request body is declared JSON (`application/json`, any parameters). */
export function isJsonBody(req: IncomingMessage): boolean {
  const type = req.headers['content-type']
  return typeof type === 'string' && /^application\/json\s*(;|$)/i.test(type)
}

/** JSON text parsed, or `{ error }` with the parser's message. */
export function parseJson(text: string): { value: unknown } | { error: string } {
  try {
    return { value: JSON.parse(text) }
  } catch (err) {
    return { error: (err as Error).message }
  }
}
