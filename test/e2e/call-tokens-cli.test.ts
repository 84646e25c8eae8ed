import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { connect } from '../../framework/index.js'
import type cache from '../../services/cache/index.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { CLI, REPO_ROOT } from '../support/instance.js'
import { startRegistered } from '../support/spawned-app.js'

// `framework call` and connect() sign their calls with the namespace secret of their environment
// (as `cli` and `client`); without it, a service that requires tokens refuses them.

const fixture = useEtcd('call-tokens-cli', 2)
const SECRET = `${'c'.repeat(16)}-the-secret-of-the-cli-test`

describe('framework call and connect() with call tokens (real processes)', () => {
  it('call with FRAMEWORK_SECRET succeeds; without it, UNAUTHORIZED and exit 1', async () => {
    const namespace = fixture.namespace()
    await startRegistered(
      (role, ns) => fixture.spawn(role, ns, { env: { FRAMEWORK_SECRET: SECRET } }),
      'cache',
      namespace,
    )
    const call = (env: Record<string, string>) =>
      spawnSync(process.execPath, [CLI, 'call', 'cache.get', '{"key":"a"}'], {
        cwd: REPO_ROOT,
        env: { ...process.env, ...fixture.env(namespace), ...env },
        encoding: 'utf8',
        timeout: 60_000,
      })
    const signed = call({ FRAMEWORK_SECRET: SECRET })
    expect(signed.status, signed.stderr).toBe(0)
    expect(JSON.parse(signed.stdout)).toMatchObject({ value: null, hit: false })
    const unsigned = call({})
    expect(unsigned.status).toBe(1)
    expect(unsigned.stderr).toMatch(/UNAUTHORIZED/)

    const connection = connect<{ cache: typeof cache }>({
      deps: { cache: true },
      env: { ...fixture.env(namespace), FRAMEWORK_SECRET: SECRET },
    })
    try {
      expect(await connection.deps.cache.get({ key: 'a' })).toMatchObject({ hit: false })
    } finally {
      await connection.close()
    }
  }, 120_000)
})
