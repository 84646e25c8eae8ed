import { initTRPC } from '@trpc/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { defineService } from '../../framework/index.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import { startInProcess } from '../support/in-process.js'
import { RawStream, waitUntil } from '../support/raw-stream.js'

// A router whose errorFormatter throws: every failing call must still be answered (a 500 in
// tRPC's shape), on every lean transport, and the service must stay up.
const t = initTRPC.create({
  errorFormatter: () => {
    throw new Error('the formatter is broken')
  },
})
const brittle = defineService({
  role: 'brittle',
  router: t.router({
    fail: t.procedure.query(() => {
      throw new Error('boom')
    }),
    ok: t.procedure.query(() => 'fine'),
  }),
})

let etcd: EtcdServer
let instance: RunningInstance
beforeAll(async () => {
  etcd = await EtcdServer.start()
  instance = await startInProcess(brittle, etcd.endpoint, 'formatter')
})
afterAll(async () => {
  await instance?.stop()
  await etcd?.dispose()
})

const FAILED = { code: 'INTERNAL_SERVER_ERROR', httpStatus: 500 }

describe('an error formatter that throws', () => {
  it('a single request gets a 500 in tRPC shape', async () => {
    const response = await fetch(`${instance.instance.url}/_rpc/fail`)
    expect(response.status).toBe(500)
    const body = (await response.json()) as { error: { message: string; data: unknown } }
    expect(body.error.data).toEqual(FAILED)
    expect(body.error.message).toMatch(/formatting the error failed/)
  })

  it('a batch answers every item, the failing one with a 500', async () => {
    const response = await fetch(`${instance.instance.url}/_rpc/_batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([
        ['fail', 'query', null, 1000],
        ['ok', 'query', null, 1000],
      ]),
    })
    const lines = (await response.text())
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as [number, number, { error?: { data: unknown } }])
      .sort((a, b) => a[0] - b[0])
    expect(lines.map(([index, status]) => [index, status])).toEqual([
      [0, 500],
      [1, 200],
    ])
    expect(lines[0]![2].error?.data).toEqual(FAILED)
  })

  it('the RPC stream answers the frame with a 500 and goes on', async () => {
    const stream = await RawStream.open(instance.instance.url)
    try {
      stream.send('[1,"fail","query",null,1000]\n[2,"ok","query",null,1000]\n')
      await waitUntil(() => stream.answers.length === 2, 'two answers')
      const byId = new Map(stream.answers.map(([id, status]) => [id, status]))
      expect(byId).toEqual(
        new Map([
          [1, 500],
          [2, 200],
        ]),
      )
    } finally {
      stream.socket.destroy()
    }
    expect((await fetch(`${instance.instance.url}/healthz`)).status).toBe(200)
  })
})
