import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import cache from '../../services/cache/index.js'
import { startInProcess } from '../support/in-process.js'

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
