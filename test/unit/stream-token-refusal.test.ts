import { once } from 'node:events'
import { type AddressInfo, createServer, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { HttpTransport } from '../../framework/client/http-transport.js'
import { TOKEN_HEADER } from '../../framework/protocol/call-token.js'
import { UPGRADE_ACCEPTED, upgradeUnauthorized } from '../../framework/protocol/stream-handshake.js'

// A loopback server that speaks just enough of the RPC stream: it refuses an upgrade whose token
// is 'old' (401), accepts any other (101) and answers each call frame 200 with the token its
// connection was opened with.

const servers: ReturnType<typeof createServer>[] = []
const transports: HttpTransport[] = []
afterEach(async () => {
  for (const transport of transports.splice(0)) await transport.close()
  for (const server of servers.splice(0)) server.close()
})

async function tokenServer(): Promise<{ url: string; upgrades: string[] }> {
  const upgrades: string[] = []
  const server = createServer((socket: Socket) => {
    let buffer = ''
    let token: string | undefined
    socket.setEncoding('utf8')
    socket.on('error', () => undefined)
    socket.on('data', (chunk: string) => {
      buffer += chunk
      if (token === undefined) {
        const end = buffer.indexOf('\r\n\r\n')
        if (end === -1) return
        const head = buffer.slice(0, end)
        buffer = buffer.slice(end + 4)
        token = new RegExp(`^${TOKEN_HEADER}: (.*)$`, 'mi').exec(head)?.[1] ?? ''
        upgrades.push(token)
        if (token === 'old') {
          socket.end(upgradeUnauthorized('{"error":{"message":"refused"}}'))
          return
        }
        socket.write(UPGRADE_ACCEPTED)
      }
      let newline = buffer.indexOf('\n')
      while (newline !== -1) {
        const [id] = JSON.parse(buffer.slice(0, newline)) as [number]
        buffer = buffer.slice(newline + 1)
        socket.write(`[${id},200,${JSON.stringify({ result: { data: token } })}]\n`)
        newline = buffer.indexOf('\n')
      }
    })
  })
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, upgrades }
}

describe('a stream upgrade refused for its token (401)', () => {
  it('answers 401 only the calls signed with that token; one signed otherwise goes on a stream of its own', async () => {
    const { url, upgrades } = await tokenServer()
    const transport = new HttpTransport()
    transports.push(transport)
    const send = (token: string) =>
      transport.send(url, 'query', 'get', { key: 'k' }, 1_000, 1_000, undefined, undefined, token)
    // Both wait on the stream the first call opens (with 'old').
    const [refused, other] = await Promise.all([send('old'), send('new')])
    expect(refused.status).toBe(401)
    expect(other.status).toBe(200)
    expect(other.body).toEqual({ result: { data: 'new' } })
    expect(upgrades).toEqual(['old', 'new'])
  })
})
