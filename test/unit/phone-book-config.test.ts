import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ConfigError } from '../../framework/config/config-error.js'
import {
  resolveEtcdEndpoints,
  resolveNamespace,
  resolvePhoneBook,
} from '../../framework/config/phone-book.js'

const appRoot = mkdtempSync(join(tmpdir(), 'framework-phone-book-'))
writeFileSync(join(appRoot, 'package.json'), JSON.stringify({ name: '@shop/api' }))

afterAll(() => rmSync(appRoot, { recursive: true, force: true }))

describe('resolvePhoneBook', () => {
  it('defaults to a local etcd and the package name, scope folded in', () => {
    expect(resolvePhoneBook({}, { appRoot })).toEqual({
      etcdEndpoints: ['http://127.0.0.1:2379'],
      namespace: 'shop-api',
    })
  })

  it('the environment wins over the defaults, a choice (flag, option) over the environment', () => {
    const env = { ETCD_ENDPOINTS: '127.0.0.1:3000', FRAMEWORK_NAMESPACE: 'from-env' }
    expect(resolvePhoneBook(env, { appRoot })).toEqual({
      etcdEndpoints: ['http://127.0.0.1:3000'],
      namespace: 'from-env',
    })
    expect(
      resolvePhoneBook(env, { appRoot, etcd: 'https://127.0.0.2:4000', namespace: 'flag' }),
    ).toEqual({ etcdEndpoints: ['https://127.0.0.2:4000'], namespace: 'flag' })
  })

  it('an empty value counts as unset', () => {
    expect(resolveEtcdEndpoints({ ETCD_ENDPOINTS: '' }, '')).toEqual(['http://127.0.0.1:2379'])
    expect(resolveNamespace({ FRAMEWORK_NAMESPACE: '' }, '', () => 'fallback')).toBe('fallback')
  })

  it('a bad namespace from any source gets the one message naming FRAMEWORK_NAMESPACE', () => {
    for (const [env, chosen] of [
      [{ FRAMEWORK_NAMESPACE: 'a/b' }, undefined],
      [{}, 'a/b'],
    ] as const) {
      let error: unknown
      try {
        resolveNamespace(env, chosen, () => 'unused')
      } catch (err) {
        error = err
      }
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as ConfigError).message).toBe(
        `FRAMEWORK_NAMESPACE="a/b" is invalid: a name matching /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/ (letters, digits, '.', '_', '-'), e.g. FRAMEWORK_NAMESPACE=shop`,
      )
    }
  })

  it('bad endpoints from a flag get the ETCD_ENDPOINTS message', () => {
    expect(() => resolvePhoneBook({}, { appRoot, etcd: 'ftp://x' })).toThrowError(
      /^ETCD_ENDPOINTS="ftp:\/\/x" is invalid: a comma-separated list of etcd client URLs/,
    )
  })
})
