import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import type { Dependencies } from '../../framework/client/dependencies.js'
import { GOAWAY_FRAME } from '../../framework/protocol/stream-frames.js'
import { UPGRADE_ACCEPTED, UPGRADE_DRAINING } from '../../framework/protocol/stream-handshake.js'
import { createEtcdClient } from '../../framework/registry/etcd-client.js'
import { instanceKey } from '../../framework/registry/record.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import kitchen from '../fixtures/app/services/kitchen/index.js'
import { startInProcess, withDependencies } from '../support/in-process.js'
import { sampleRecord } from '../support/phone-book.js'

// An instance that is leaving (it left the phone book, said goaway, refused the stream with 503,
// or closed the port) gets no new call, and calls not yet written to it go to another instance,
// mutations included, none failing and none counted against the retry budget. The leaving
// instance is a scripted server (each step happens when the test says); the other is a real
// kitchen, whose served counts prove every mutation ran there exactly once.

const NAMESPACE = 'leaving'
const ROLE = 'kitchen'
/** More calls than the retry budget of a new client holds (10 + 20% of the calls). */
const CALLS = 100
let etcd: EtcdServer

beforeAll(async () => {
  etcd = await EtcdServer.start()
})

afterAll(async () => {
  await etcd?.dispose()
})

async function waitUntil(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** One call frame as the scripted instance reads it. */
type Frame = [number, string, string, unknown, number | null]

/**
 * A kitchen instance whose every step is scripted: it holds each stream upgrade until the test
 * answers it, holds each call frame until the test answers it, and counts what reached it.
 */
class ScriptedInstance {
  readonly upgrades: Socket[] = []
  readonly frames: Frame[] = []
  requests = 0
  #counter = 0
  #key = ''

  private constructor(
    readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<ScriptedInstance> {
    const server = createServer((req, res) => {
      instance.requests++
      res.writeHead(503).end()
      req.resume()
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const instance = new ScriptedInstance(
      server,
      `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    )
    server.on('upgrade', (_req, socket: Socket) => {
      instance.upgrades.push(socket)
      let buffer = ''
      socket.on('data', (chunk: Buffer) => {
        buffer += chunk.toString('utf8')
        let newline = buffer.indexOf('\n')
        while (newline !== -1) {
          instance.frames.push(JSON.parse(buffer.slice(0, newline)) as Frame)
          buffer = buffer.slice(newline + 1)
          newline = buffer.indexOf('\n')
        }
      })
      socket.on('error', () => undefined)
    })
    return instance
  }

  /** Puts this instance's record (role kitchen, `add` a mutation) in the phone book. */
  async register(): Promise<void> {
    this.#key = instanceKey(NAMESPACE, ROLE, `scripted-${++this.#counter}`)
    const id = this.#key.split('/').at(-1)!
    const record = sampleRecord(ROLE, id, this.url, {
      add: 'mutation',
      echo: 'query',
      sleep: 'query',
    })
    await this.#etcd(async (client) => {
      await client.put(this.#key).value(JSON.stringify(record))
    })
  }

  /** Deletes its record, as a revoked lease does. */
  async deregister(): Promise<void> {
    await this.#etcd(async (client) => {
      await client.delete().key(this.#key)
    })
  }

  /** Frames of `path` received. */
  received(path: string): Frame[] {
    return this.frames.filter((frame) => frame[1] === path)
  }

  answer(frame: Frame, data: unknown, before = ''): void {
    this.upgrades
      .at(-1)!
      .write(`${before}${JSON.stringify([frame[0], 200, { result: { data } }])}\n`)
  }

  async close(): Promise<void> {
    for (const socket of this.upgrades) socket.destroy()
    this.server.closeAllConnections()
    if (this.server.listening) await new Promise((resolve) => this.server.close(resolve))
  }

  async #etcd(body: (client: ReturnType<typeof createEtcdClient>) => Promise<void>) {
    const client = createEtcdClient([etcd.endpoint])
    try {
      await body(client)
    } finally {
      client.close()
    }
  }
}

/** The rejection reasons among `results`, as text. */
function failures(results: PromiseSettledResult<unknown>[]): string[] {
  return results
    .filter((result): result is PromiseRejectedResult => result.status === 'rejected')
    .map((result) => String(result.reason))
}

/**
 * The scripted instance alone in the phone book, a client that knows it, `CALLS` mutations
 * made to it (waiting for its stream upgrade), then a real kitchen known to the client too; runs
 * `leave` (how the scripted instance goes) and checks every mutation ran once on the kitchen.
 */
async function mutationsWhileLeaving(
  leave: (scripted: ScriptedInstance, deps: Dependencies) => Promise<void>,
): Promise<ScriptedInstance> {
  const scripted = await ScriptedInstance.start()
  let other: RunningInstance | undefined
  try {
    await scripted.register()
    await withDependencies(etcd.endpoint, NAMESPACE, [ROLE], async (deps) => {
      const resolver = deps.resolvers.get(ROLE)!
      await waitUntil(() => resolver.endpoints.length === 1, 'the scripted instance listed')
      const client = deps.clients.get(ROLE)!
      const calls = Array.from({ length: CALLS }, () => client.call('add', { n: 1 }))
      await waitUntil(() => scripted.upgrades.length === 1, 'the stream upgrade request')
      other = await startInProcess(kitchen, etcd.endpoint, NAMESPACE)
      await waitUntil(() => resolver.endpoints.length === 2, 'the kitchen listed too')
      await leave(scripted, deps)
      const results = await Promise.allSettled(calls)
      expect(failures(results)).toEqual([])
      expect(other.served.snapshot().add).toBe(CALLS)
      expect(scripted.received('add')).toEqual([])
      expect(scripted.requests).toBe(0)
    })
  } finally {
    await other?.stop()
    await scripted.close()
  }
  return scripted
}

describe('calls not yet written to a leaving instance go to another one (RPC stream)', () => {
  it('the instance leaves the phone book while calls wait for its stream upgrade, then closes the connection unanswered', async () => {
    await mutationsWhileLeaving(async (scripted, deps) => {
      await scripted.deregister()
      await waitUntil(() => deps.resolvers.get(ROLE)!.endpoints.length === 1, 'the delete seen')
      // As a draining server closing connections that have no request running.
      scripted.upgrades[0]!.destroy()
    })
  })

  it('the instance answers the upgrade with 503 (draining) while still in the phone book', async () => {
    await mutationsWhileLeaving(async (scripted) => {
      scripted.upgrades[0]!.end(UPGRADE_DRAINING)
    })
  })

  it('the instance closes the connection unanswered and stops listening before the caller sees it leave', async () => {
    await mutationsWhileLeaving(async (scripted) => {
      await new Promise((resolve) => {
        scripted.server.close(resolve)
        scripted.upgrades[0]!.destroy()
      })
    })
  })

  it('goaway: calls made after it go elsewhere, over no new connection; the call in flight is answered', async () => {
    const scripted = await ScriptedInstance.start()
    let other: RunningInstance | undefined
    try {
      await scripted.register()
      await withDependencies(etcd.endpoint, NAMESPACE, [ROLE], async (deps) => {
        const resolver = deps.resolvers.get(ROLE)!
        await waitUntil(() => resolver.endpoints.length === 1, 'the scripted instance listed')
        const client = deps.clients.get(ROLE)!
        const held = client.call('sleep', { ms: 1 })
        const marker = client.call('echo', { text: 'marker' })
        await waitUntil(() => scripted.upgrades.length === 1, 'the stream upgrade request')
        scripted.upgrades[0]!.write(UPGRADE_ACCEPTED)
        await waitUntil(() => scripted.frames.length === 2, 'both calls written')
        other = await startInProcess(kitchen, etcd.endpoint, NAMESPACE)
        await waitUntil(() => resolver.endpoints.length === 2, 'the kitchen listed too')
        // The goaway and an answer in one write: once the answer is in, so is the goaway.
        scripted.answer(scripted.received('echo')[0]!, 'marker', GOAWAY_FRAME)
        expect(await marker).toBe('marker')
        const results = await Promise.allSettled(
          Array.from({ length: CALLS }, () => client.call('add', { n: 1 })),
        )
        expect(failures(results)).toEqual([])
        expect(other.served.snapshot().add).toBe(CALLS)
        expect(scripted.received('add')).toEqual([])
        expect(scripted.upgrades).toHaveLength(1)
        // Calls sent before the goaway are answered by the instance that said it.
        scripted.answer(scripted.received('sleep')[0]!, 1)
        expect(await held).toBe(1)
      })
    } finally {
      await other?.stop()
      await scripted.close()
    }
  })
})
