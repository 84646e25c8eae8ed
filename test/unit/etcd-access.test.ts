import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { resolveEtcdAccess } from '../../framework/config/etcd-access.js'
import { explainEtcdRefusal } from '../../framework/registry/etcd-access-error.js'

const dir = mkdtempSync(join(tmpdir(), 'framework-etcd-access-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const file = (name: string, text: string, mode = 0o600) => {
  const path = join(dir, name)
  writeFileSync(path, text)
  chmodSync(path, mode)
  return path
}
const HTTPS = ['https://127.0.0.1:2379']

describe('resolveEtcdAccess', () => {
  it('nothing set: undefined (a plain etcd)', () => {
    expect(resolveEtcdAccess({}, ['http://127.0.0.1:2379'])).toBeUndefined()
  })

  it('reads the TLS files and the password file (one trailing newline dropped)', () => {
    const env = {
      ETCD_CA_FILE: file('ca.crt', 'CA', 0o644),
      ETCD_CERT_FILE: file('c.crt', 'CERT', 0o644),
      ETCD_KEY_FILE: file('c.key', 'KEY'),
      ETCD_USERNAME: 'shop.api',
      ETCD_PASSWORD_FILE: file('pw', 's3cret\n'),
    }
    const access = resolveEtcdAccess(env, HTTPS)!
    expect(access.ca?.toString()).toBe('CA')
    expect(access.cert?.toString()).toBe('CERT')
    expect(access.key?.toString()).toBe('KEY')
    expect(access).toMatchObject({ username: 'shop.api', password: 's3cret' })
  })

  it('flags win over variables and are named in errors', () => {
    const env = { ETCD_USERNAME: 'env-user', ETCD_PASSWORD: 'env-pw' }
    const access = resolveEtcdAccess(env, HTTPS, {
      username: 'flag-user',
      passwordFile: file('flag.pw', 'flag-pw'),
    })!
    expect(access).toMatchObject({ username: 'flag-user', password: 'flag-pw' })
    expect(() =>
      resolveEtcdAccess({}, HTTPS, { username: 'u', passwordFile: file('open', 'x', 0o644) }),
    ).toThrow(/^--etcd-password-file=.* readable by others \(mode 0644\); chmod 600 /)
  })

  it.each([
    [{ ETCD_CERT_FILE: 'x' }, /ETCD_KEY_FILE=.*needs its private key/],
    [{ ETCD_KEY_FILE: 'x' }, /ETCD_CERT_FILE=.*needs its certificate/],
    [{ ETCD_PASSWORD: 'x' }, /ETCD_PASSWORD=.*a password without a user/],
    [{ ETCD_USERNAME: 'u' }, /ETCD_USERNAME="u".*needs a password/],
    [
      { ETCD_USERNAME: 'u', ETCD_PASSWORD: 'p', ETCD_PASSWORD_FILE: '/x' },
      /both ETCD_PASSWORD and ETCD_PASSWORD_FILE/,
    ],
  ])('%j → one line naming the setting', (env, message) => {
    expect(() => resolveEtcdAccess(env, HTTPS)).toThrow(message)
  })

  it('an empty password file is refused', () => {
    expect(() =>
      resolveEtcdAccess({ ETCD_USERNAME: 'u', ETCD_PASSWORD_FILE: file('empty', '\n') }, HTTPS),
    ).toThrow(/ETCD_PASSWORD_FILE=.*the password is empty/)
  })
})

describe('explainEtcdRefusal', () => {
  const at = ['https://127.0.0.1:2379']
  it.each([
    [
      '14 UNAVAILABLE: No connection established. Last error: Error: unable to verify the first certificate. Resolution note: ',
      'server-cert',
      /failed the TLS check \(unable to verify the first certificate\); point ETCD_CA_FILE/,
    ],
    [
      '14 UNAVAILABLE: No connection established. Last error: 80:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../deps/x.c:1601:SSL alert number 42',
      'client-cert',
      /requires a client certificate .*set ETCD_CERT_FILE and ETCD_KEY_FILE/,
    ],
    [
      '3 INVALID_ARGUMENT: etcdserver: authentication failed, invalid user ID or password',
      'credentials',
      /wrong password or no such user/,
    ],
    [
      '3 INVALID_ARGUMENT: etcdserver: user name is empty',
      'credentials',
      /set ETCD_USERNAME and ETCD_PASSWORD_FILE/,
    ],
    [
      '7 PERMISSION_DENIED: etcdserver: permission denied',
      'permission',
      /may not use the phone book/,
    ],
  ])('%s → %s', (message, kind, line) => {
    const refusal = explainEtcdRefusal(new Error(message), at, undefined)
    expect(refusal?.kind).toBe(kind)
    expect(refusal?.line).toMatch(line)
    expect(refusal?.line.split('\n')).toHaveLength(1)
  })

  it('etcd being down is not a refusal', () => {
    expect(
      explainEtcdRefusal(
        new Error('14 UNAVAILABLE: connect ECONNREFUSED 127.0.0.1:2379'),
        at,
        undefined,
      ),
    ).toBeUndefined()
  })
})
