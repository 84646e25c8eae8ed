import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT, spawnInstance, testEnv } from '../support/instance.js'

describe('bad environment and bad service modules', () => {
  const fixtureApp = resolve(REPO_ROOT, 'test/fixtures/app')
  it.each([
    ['FRAMEWORK_TTL', '1', 'cache', REPO_ROOT],
    ['PORT', 'abc', 'cache', REPO_ROOT],
    ['ETCD_ENDPOINTS', 'http://[oops', 'cache', REPO_ROOT],
    ['FRAMEWORK_MAX_INFLIGHT', '-5', 'cache', REPO_ROOT],
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
