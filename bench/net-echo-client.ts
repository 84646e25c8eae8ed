import { connect } from 'node:net'

/**
 * A caller of bench/net-echo.ts: one connection, each call one frame written at once and its
 * promise settled by the answer with its id. The floor's other half (no balancer, no retries).
 */
export async function netEchoCaller(
  port: number,
): Promise<{ call: () => Promise<unknown>; close: () => void }> {
  const socket = connect({ host: '127.0.0.1', port, noDelay: true })
  socket.setEncoding('utf8')
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  // ('close' follows an error; a listener keeps an error from ending the bench.)
  socket.on('error', () => undefined)
  const waiting = new Map<
    number,
    { resolve: (body: unknown) => void; reject: (err: Error) => void }
  >()
  let nextId = 1
  let buffer = ''
  socket.on('data', (chunk: string) => {
    buffer += chunk
    let newline = buffer.indexOf('\n')
    while (newline !== -1) {
      const [id, , body] = JSON.parse(buffer.slice(0, newline)) as [number, number, unknown]
      buffer = buffer.slice(newline + 1)
      waiting.get(id)?.resolve(body)
      waiting.delete(id)
      newline = buffer.indexOf('\n')
    }
  })
  // A connection that ends fails its waiting calls (a load loop never waits on a dead socket).
  socket.on('close', () => {
    for (const { reject } of waiting.values()) reject(new Error('the echo connection closed'))
    waiting.clear()
  })
  return {
    call: () =>
      new Promise((resolve, reject) => {
        if (socket.destroyed) {
          reject(new Error('the echo connection is closed'))
          return
        }
        const id = nextId++
        waiting.set(id, { resolve, reject })
        socket.write(`[${id},"get","query",{"key":"k"},null]\n`)
      }),
    close: () => socket.destroy(),
  }
}
