import { once } from 'node:events'
import { createServer } from 'node:net'
import { describe, expect, it } from 'vitest'
import { RequestPool } from '../../framework/client/request-pool.js'
import { BEFORE_CONNECTED, connectionError } from '../../framework/client/transport-error.js'

const withCode = (code: string) => Object.assign(new Error(code), { code })

describe('sent or provably not: connection errors', () => {
  it('refused, unknown host, connect timeout, closed pool: never sent', () => {
    for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED']) {
      expect(connectionError('http://x', withCode(code)).sent, code).toBe(false)
    }
  })

  it('host or network unreachable counts as never sent only when it came from connecting', () => {
    for (const code of ['EHOSTUNREACH', 'ENETUNREACH']) {
      // On a connected socket (a peer's address gone mid-request) the request may have run.
      expect(connectionError('http://x', withCode(code)).sent, code).toBe(true)
      const whileConnecting = Object.defineProperty(withCode(code), BEFORE_CONNECTED, {
        value: true,
      })
      expect(connectionError('http://x', whileConnecting).sent, code).toBe(false)
      expect(
        connectionError('http://x', new Error('wrapped', { cause: whileConnecting })).sent,
      ).toBe(false)
    }
  })

  it('a reset or other socket error after connecting: sent', () => {
    for (const code of ['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']) {
      expect(connectionError('http://x', withCode(code)).sent, code).toBe(true)
    }
  })

  it("the request pool marks its connector's errors as before connecting", async () => {
    const server = createServer()
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as { port: number }
    server.close()
    const pool = new RequestPool(`http://127.0.0.1:${port}`)
    try {
      const err = await (await pool.get()).request({ method: 'GET', path: '/' }).then(
        () => undefined,
        (error: unknown) => error,
      )
      expect(err).toBeInstanceOf(Error)
      expect(BEFORE_CONNECTED in (err as object)).toBe(true)
    } finally {
      await pool.destroy()
    }
  })
})
