import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { DEFAULT_TIMEOUT_MS } from '../../framework/client/dependency-client.js'
import { defineService, initService } from '../../framework/index.js'
import { createEtcdClient } from '../../framework/registry/etcd-client.js'
import { instanceKey } from '../../framework/registry/record.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import type { DepOptions } from '../../framework/service/define-service.js'
import { startInProcess } from '../support/in-process.js'
import { sampleRecord } from '../support/phone-book.js'

// The deadline of a ctx.deps call when nobody sets one: 10 s by default, or the dependency's
// `timeoutMs` from `deps` in defineService. The dependency is a server that accepts calls and
// never answers them (its record put by hand), so only the deadline ends a call.

const NAMESPACE = 'deadlines-in-process'

const m = initService()
/** The contract of the silent dependency (it is never run: a silent server stands in for it). */
const mute = defineService({
  role: 'mute',
  router: m.router({
    echo: m.procedure.input(z.object({ text: z.string() })).query(({ input }) => input.text),
  }),
})

const d = initService<{ mute: typeof mute }>()
/** A service calling `mute.echo` through ctx.deps with `options` for the dependency. */
function callerOf(role: string, options: DepOptions | true) {
  return defineService({
    role,
    deps: { mute: options },
    router: d.router({
      callMute: d.procedure.query(({ ctx }) => ctx.deps.mute.echo({ text: 'anyone?' })),
    }),
  })
}

let etcd: EtcdServer
let silent: Server
const sockets: Socket[] = []
const running: RunningInstance[] = []

beforeAll(async () => {
  etcd = await EtcdServer.start()
  // Accepts the RPC stream and requests alike, and answers nothing.
  silent = createServer(() => undefined)
  silent.on('upgrade', (_req, socket: Socket) => {
    sockets.push(socket)
    socket.on('error', () => undefined)
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nupgrade: framework-rpc/1\r\nconnection: upgrade\r\n\r\n',
    )
    socket.on('data', () => undefined)
  })
  silent.listen(0, '127.0.0.1')
  await once(silent, 'listening')
  const { port } = silent.address() as { port: number }
  const client = createEtcdClient([etcd.endpoint])
  try {
    await client
      .put(instanceKey(NAMESPACE, 'mute', 'mute-1'))
      .value(
        JSON.stringify(
          sampleRecord('mute', 'mute-1', `http://127.0.0.1:${port}`, { echo: 'query' }),
        ),
      )
  } finally {
    client.close()
  }
})

afterAll(async () => {
  await Promise.all(running.map((instance) => instance.stop()))
  for (const socket of sockets) socket.destroy()
  silent?.closeAllConnections()
  silent?.close()
  await etcd?.dispose()
})

/** Calls `callMute` of a fresh in-process caller; resolves with the answer and how long it took. */
async function callThrough(role: string, options: DepOptions | true) {
  const instance = await startInProcess(callerOf(role, options), etcd.endpoint, NAMESPACE)
  running.push(instance)
  // Listed first: the first call would otherwise spend part of its deadline on the listing.
  await instance.deps?.waitForInstances(10_000)
  const started = performance.now()
  const response = await fetch(`${instance.instance.url}/trpc/callMute`)
  const body = (await response.json()) as { error: { message: string; data: { code: string } } }
  return { status: response.status, body, ms: performance.now() - started }
}

describe('deadlines of ctx.deps calls', () => {
  it('a dependency without timeoutMs: the call ends with TIMEOUT after the 10 s default', async () => {
    expect(DEFAULT_TIMEOUT_MS).toBe(10_000)
    const { status, body, ms } = await callThrough('caller-default', true)
    expect(status).toBe(408)
    expect(body.error.data.code).toBe('TIMEOUT')
    expect(body.error.message).toContain('mute.echo')
    expect(body.error.message).toContain('(10000 ms;')
    // Timers do not fire early: it waited the whole deadline.
    expect(ms).toBeGreaterThanOrEqual(10_000 - 50)
  }, 30_000)

  it("`deps: { mute: { timeoutMs: 300 } }`: that is the call's deadline", async () => {
    const { status, body, ms } = await callThrough('caller-short', { timeoutMs: 300 })
    expect(status).toBe(408)
    expect(body.error.data.code).toBe('TIMEOUT')
    expect(body.error.message).toContain('(300 ms;')
    expect(ms).toBeGreaterThanOrEqual(300 - 50)
    // Not the 10 s default (how fast it fails is not this test's business).
    expect(ms).toBeLessThan(DEFAULT_TIMEOUT_MS)
  })
})
