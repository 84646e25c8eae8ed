import { describe, expect, it } from 'vitest'
import { useCacheUnderTest } from '../support/cache-under-test.js'

const cacheUnderTest = useCacheUnderTest('bad-input')
const { query, mutate } = cacheUnderTest

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
    const badQuery = await fetch(`${cacheUnderTest.url}/trpc/get?input=%7Bnot`)
    expect(badQuery.status).toBe(400)
  })

  it('the service is still healthy and correct afterwards', async () => {
    expect((await fetch(`${cacheUnderTest.url}/healthz`)).status).toBe(200)
    expect((await mutate('set', JSON.stringify({ key: 'k', value: 'v' }))).status).toBe(200)
    const response = await query('get', { key: 'k' })
    expect(await response.json()).toEqual({
      result: { data: { value: 'v', hit: true, instance: cacheUnderTest.id } },
    })
  })
})
