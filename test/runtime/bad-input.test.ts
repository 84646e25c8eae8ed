import { once } from 'node:events'
import { connect } from 'node:net'
import { resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import cache from '../../services/cache/index.js'
import { recordFault } from '../support/fault-summary.js'
import { randomValue, seeded } from '../support/fuzz.js'
import { startInProcess } from '../support/in-process.js'
import { REPO_ROOT, spawnInstance, testEnv } from '../support/instance.js'

let etcd: EtcdServer
let running: RunningInstance
let url: string

beforeAll(async () => {
  etcd = await EtcdServer.start()
  running = await startInProcess(cache, etcd.endpoint, 'bad-input')
  url = running.instance.url
})

afterAll(async () => {
  await running?.stop()
  await etcd?.dispose()
})

const query = (path: string, input: unknown) =>
  fetch(`${url}/trpc/${path}?input=${encodeURIComponent(JSON.stringify(input))}`)
const mutate = (path: string, body: string) =>
  fetch(`${url}/trpc/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  })

type ErrorBody = {
  error: {
    message: string
    data: { code: string; httpStatus: number; issues?: { path: unknown[] }[]; stack?: string }
  }
}

describe('bad procedure input', () => {
  it('invalid input → 400 with the zod issue paths', async () => {
    const response = await mutate('set', JSON.stringify({ key: '', value: 7 }))
    expect(response.status).toBe(400)
    const body = (await response.json()) as ErrorBody
    expect(body.error.data.code).toBe('BAD_REQUEST')
    expect(body.error.data.issues?.map((issue) => issue.path)).toEqual([['key'], ['value']])
    expect(body.error.message).toMatch(/^invalid input: key: .*; value: /)
    expect(body.error.data.stack).toBeUndefined()
  })

  it('missing fields, wrong types, deep nesting, huge strings → 400', async () => {
    for (const input of [
      {},
      { key: 42 },
      { key: { a: { b: { c: [1, 2, 3] } } } },
      { key: 'k'.repeat(257) },
      null,
    ]) {
      const response = await query('get', input)
      expect(response.status, JSON.stringify(input)).toBe(400)
    }
    const tooBig = await mutate(
      'set',
      JSON.stringify({ key: 'k', value: 'v'.repeat(64 * 1024 + 1) }),
    )
    expect(tooBig.status).toBe(400)
    expect(((await tooBig.json()) as ErrorBody).error.data.issues?.[0]?.path).toEqual(['value'])
  })

  it('unknown procedure → 404', async () => {
    const response = await query('nope', {})
    expect(response.status).toBe(404)
    expect(((await response.json()) as ErrorBody).error.message).toContain('nope')
  })

  it('body over the limit (1 MiB) → 413 naming the setting', async () => {
    const response = await mutate(
      'set',
      JSON.stringify({ key: 'k', value: 'v'.repeat(1024 * 1024 + 1) }),
    )
    expect(response.status).toBe(413)
    expect(((await response.json()) as ErrorBody).error.message).toContain(
      'FRAMEWORK_MAX_BODY_BYTES',
    )
  })

  it('malformed JSON → 400 saying it is not JSON', async () => {
    const response = await mutate('set', '{"key": ')
    expect(response.status).toBe(400)
    expect(((await response.json()) as ErrorBody).error.message).toMatch(/not valid JSON/)
    const badQuery = await fetch(`${url}/trpc/get?input=%7Bnot`)
    expect(badQuery.status).toBe(400)
  })

  it('the service is still healthy and correct afterwards', async () => {
    expect((await fetch(`${url}/healthz`)).status).toBe(200)
    expect((await mutate('set', JSON.stringify({ key: 'k', value: 'v' }))).status).toBe(200)
    const response = await query('get', { key: 'k' })
    expect(await response.json()).toEqual({
      result: { data: { value: 'v', hit: true, instance: running.instance.id } },
    })
  })
})

describe('fuzzed and garbage input', () => {
  it('400 random inputs to both paths (tRPC adapter and fast path) and batches: never a 5xx, always an error body', async () => {
    const random = seeded(20261126)
    const statuses = new Map<number, number>()
    const unexpected: string[] = []
    const check = async (label: string, response: Response) => {
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
      const text = await response.text()
      if (response.status >= 500 || (response.status !== 200 && !text.includes('message'))) {
        unexpected.push(`${label} → ${response.status} ${text.slice(0, 200)}`)
      }
    }
    for (let i = 0; i < 100; i++) {
      const input = randomValue(random, 6)
      const body = JSON.stringify(input) ?? 'null'
      await check(`/trpc/set ${body.slice(0, 80)}`, await mutate('set', body))
      await check(`/trpc/get ${body.slice(0, 80)}`, await query('get', input))
      await check(
        `/_rpc/set ${body.slice(0, 80)}`,
        await fetch(`${url}/_rpc/set`, { method: 'POST', body }),
      )
      // A batch whose items are themselves random: a wrong shape anywhere → 400 for the batch,
      // well-formed items with bad input → each item its own 400.
      const items = Array.from({ length: 1 + Math.floor(random() * 3) }, () =>
        random() < 0.5
          ? ['set', 'mutation', randomValue(random, 3), 1_000]
          : randomValue(random, 2),
      )
      await check(
        `/_rpc/_batch ${JSON.stringify(items).slice(0, 80)}`,
        await fetch(`${url}/_rpc/_batch`, { method: 'POST', body: JSON.stringify(items) }),
      )
    }
    // Bytes that are not JSON at all.
    const bytes = Buffer.from(Array.from({ length: 2048 }, () => Math.floor(random() * 256)))
    for (const path of ['/trpc/set', '/_rpc/set', '/_rpc/_batch']) {
      await check(
        `${path} random bytes`,
        await fetch(`${url}${path}`, { method: 'POST', body: bytes }),
      )
    }
    recordFault({
      fault: 'bad input: 403 fuzzed requests (tRPC adapter, fast path, batches)',
      calls: [...statuses.values()].reduce((a, b) => a + b, 0),
      failed: unexpected.length,
      lost: 0,
      instances: 1,
      note: `statuses ${[...statuses].map(([status, n]) => `${status}×${n}`).join(', ')}; server alive`,
    })
    expect(unexpected).toEqual([])
    expect((await fetch(`${url}/healthz`)).status).toBe(200)
  })

  it('garbage bytes on the raw port: the connection is closed, the service is unaffected', async () => {
    const { port } = new URL(url)
    const random = seeded(7)
    const payloads = [
      Buffer.from(Array.from({ length: 4096 }, () => Math.floor(random() * 256))),
      Buffer.from('GARBAGE / NONSENSE\r\n\r\n'),
      Buffer.from(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: ${'a'.repeat(128 * 1024)}\r\n\r\n`),
      Buffer.from('POST /_rpc/set HTTP/1.1\r\nContent-Length: -5\r\n\r\n'),
      Buffer.from('POST /_rpc/_batch HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'),
    ]
    const answers: string[] = []
    for (const payload of payloads) {
      const socket = connect(Number(port), '127.0.0.1')
      let received = ''
      socket.on('data', (chunk) => {
        received += chunk.toString('latin1')
      })
      socket.on('error', () => undefined)
      socket.write(payload)
      const closed = await Promise.race([
        once(socket, 'close').then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000)),
      ])
      socket.destroy()
      answers.push(received.split('\r\n')[0] ?? '')
      expect(
        closed,
        `connection left open after ${payload.subarray(0, 40).toString('latin1')}`,
      ).toBe(true)
      expect(received).not.toMatch(/^HTTP\/1\.1 (200|5\d\d)/)
    }
    expect((await fetch(`${url}/healthz`)).status).toBe(200)
    const response = await query('get', { key: 'after-garbage' })
    expect(response.status).toBe(200)
    recordFault({
      fault: 'garbage bytes on a service port (5 connections)',
      calls: payloads.length,
      failed: 0,
      lost: 0,
      instances: 1,
      note: `answers: ${answers.map((line) => line || '(closed)').join('; ')}; service healthy`,
    })
  })
})

describe('bad environment and bad service modules', () => {
  const fixtureApp = resolve(REPO_ROOT, 'test/fixtures/app')
  it.each([
    ['FRAMEWORK_TTL', '1', 'cache', REPO_ROOT],
    ['PORT', 'abc', 'cache', REPO_ROOT],
    ['ETCD_ENDPOINTS', 'http://[oops', 'cache', REPO_ROOT],
  ])('%s=%s → one line naming the variable, exit 2', async (variable, value, role, appRoot) => {
    const instance = spawnInstance(role, {
      appRoot,
      env: { ...testEnv('http://127.0.0.1:1', 'x'), [variable]: value },
    })
    expect(await instance.exited).toBe(2)
    const lines = instance.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(
      new RegExp(`^framework: ${variable}=.* is invalid: .*e\\.g\\. ${variable}=`),
    )
  })

  it.each([
    ['badrole', /invalid role "Bad_Role".*must match/],
    ['notaservice', /must default-export defineService/],
    ['missing', /no service 'missing'.*framework generate service missing/],
    ['Not-A-Role', /invalid role "Not-A-Role"/],
  ])('service %s → one clear line, exit 2', async (role, message) => {
    const instance = spawnInstance(role, {
      appRoot: fixtureApp,
      env: testEnv('http://127.0.0.1:1', 'x'),
    })
    expect(await instance.exited).toBe(2)
    const lines = instance.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(message)
  })
})
