import { describe, expect, it } from 'vitest'
import { ConfigError } from '../../framework/config/config-error.js'
import { parseEtcdEndpoints } from '../../framework/config/etcd-endpoints.js'
import { loadConfig } from '../../framework/runtime/config.js'

const defaults = { namespace: 'shop' }

describe('loadConfig', () => {
  it('has documented defaults', () => {
    const config = loadConfig({ ADVERTISE_HOST: '127.0.0.1' }, defaults)
    expect(config).toMatchObject({
      etcdEndpoints: ['http://127.0.0.1:2379'],
      port: 0,
      namespace: 'shop',
      ttlSeconds: 5,
      advertiseHost: '127.0.0.1',
      loadRefreshMs: 5000,
      drainTimeoutMs: 10000,
      maxBodyBytes: 1024 * 1024,
      maxBatchSize: 128,
      maxInflight: 1024,
    })
  })

  it.each([
    ['FRAMEWORK_TTL', '1', /FRAMEWORK_TTL="1" is invalid: .*at least 2/],
    ['FRAMEWORK_TTL', 'five', /FRAMEWORK_TTL="five" is invalid/],
    ['PORT', 'abc', /PORT="abc" is invalid: a port number/],
    ['PORT', '70000', /PORT="70000" is invalid/],
    [
      'ETCD_ENDPOINTS',
      '::not a url',
      /ETCD_ENDPOINTS="::not a url" is invalid: a comma-separated list/,
    ],
    ['ETCD_ENDPOINTS', 'ftp://127.0.0.1:2379', /ETCD_ENDPOINTS/],
    ['ETCD_ENDPOINTS', 'http://127.0.0.1', /ETCD_ENDPOINTS/],
    ['FRAMEWORK_NAMESPACE', 'a/b', /FRAMEWORK_NAMESPACE="a\/b" is invalid/],
    ['ADVERTISE_URL', 'not a url', /ADVERTISE_URL="not a url" is invalid/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL="loud" is invalid/],
    ['FRAMEWORK_MAX_INFLIGHT', '-1', /FRAMEWORK_MAX_INFLIGHT="-1" is invalid: .*\(0 = no limit\)/],
    ['FRAMEWORK_MAX_INFLIGHT', '1.5', /FRAMEWORK_MAX_INFLIGHT="1.5" is invalid/],
    ['FRAMEWORK_MAX_INFLIGHT', 'many', /FRAMEWORK_MAX_INFLIGHT="many" is invalid/],
  ])('%s=%s names the variable and the accepted form', (variable, value, message) => {
    let error: unknown
    try {
      loadConfig({ [variable]: value }, defaults)
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as ConfigError).variable).toBe(variable)
    expect((error as Error).message).toMatch(message)
  })

  it('reads FRAMEWORK_MAX_INFLIGHT, 0 turning shedding off', () => {
    const env = { ADVERTISE_HOST: '127.0.0.1' }
    expect(loadConfig({ ...env, FRAMEWORK_MAX_INFLIGHT: '8' }, defaults).maxInflight).toBe(8)
    expect(loadConfig({ ...env, FRAMEWORK_MAX_INFLIGHT: '0' }, defaults).maxInflight).toBe(0)
  })

  it('parses endpoint lists, adding http:// to bare host:port', () => {
    expect(parseEtcdEndpoints('127.0.0.1:2379, https://127.0.0.2:2379/')).toEqual([
      'http://127.0.0.1:2379',
      'https://127.0.0.2:2379',
    ])
  })
})
