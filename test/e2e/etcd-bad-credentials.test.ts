import { execFile, spawnSync } from 'node:child_process'
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { CLI, REPO_ROOT, spawnInstance, testEnv } from '../support/instance.js'

// Unreadable or world-readable key and password files are refused before anything starts: one
// line naming the variable (or flag) and the fix, exit 2 — for a service and for the CLI.

const dir = mkdtempSync(join(tmpdir(), 'framework-bad-credentials-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function file(name: string, mode: number, text = 'secret\n'): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  chmodSync(path, mode)
  return path
}

const openPassword = file('open.password', 0o644)
const groupPassword = file('group.password', 0o640)
const openKey = file('open.key', 0o604)
const cert = file('client.crt', 0o644)
const missing = join(dir, 'missing.password')

describe('bad etcd credential files', () => {
  it.each([
    [
      'world-readable ETCD_PASSWORD_FILE',
      { ETCD_USERNAME: 'u', ETCD_PASSWORD_FILE: openPassword },
      /^framework: ETCD_PASSWORD_FILE=".*open\.password" is invalid: it is readable by others \(mode 0644\); chmod 600 /,
    ],
    [
      'group-readable ETCD_PASSWORD_FILE',
      { ETCD_USERNAME: 'u', ETCD_PASSWORD_FILE: groupPassword },
      /ETCD_PASSWORD_FILE=.* readable by others \(mode 0640\)/,
    ],
    [
      'world-readable ETCD_KEY_FILE',
      {
        ETCD_ENDPOINTS: 'https://127.0.0.1:1',
        ETCD_CERT_FILE: cert,
        ETCD_KEY_FILE: openKey,
      },
      /^framework: ETCD_KEY_FILE=.* readable by others \(mode 0604\); chmod 600 /,
    ],
    [
      'unreadable ETCD_PASSWORD_FILE',
      { ETCD_USERNAME: 'u', ETCD_PASSWORD_FILE: missing },
      /^framework: ETCD_PASSWORD_FILE=.* is invalid: cannot read it \(ENOENT\); point ETCD_PASSWORD_FILE at a readable file$/,
    ],
    [
      'ETCD_CA_FILE that is a directory',
      { ETCD_ENDPOINTS: 'https://127.0.0.1:1', ETCD_CA_FILE: dir },
      /^framework: ETCD_CA_FILE=.* cannot read it \(EISDIR\)/,
    ],
    [
      'TLS files with an http endpoint',
      { ETCD_CA_FILE: cert },
      /^framework: ETCD_ENDPOINTS=.* use https:\/\/ endpoints/,
    ],
    [
      'a user without a password',
      { ETCD_USERNAME: 'u' },
      /^framework: ETCD_USERNAME="u" is invalid: an etcd user needs a password/,
    ],
  ])('service with %s → one line, exit 2', async (_what, env, message) => {
    const instance = spawnInstance('cache', {
      env: { ...testEnv('http://127.0.0.1:1', 'x'), ...env },
    })
    expect(await instance.exited).toBe(2)
    const lines = instance.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(message)
  })

  it('the CLI names the flag: ps --etcd-password-file <world-readable> → exit 2', async () => {
    const failed = await promisify(execFile)(
      process.execPath,
      [
        CLI,
        'ps',
        '--etcd',
        'http://127.0.0.1:1',
        '--etcd-user',
        'u',
        '--etcd-password-file',
        openPassword,
      ],
      { cwd: REPO_ROOT },
    ).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    )
    expect(failed?.code).toBe(2)
    const lines = failed?.stderr.trim().split('\n') ?? []
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^framework: --etcd-password-file=.* readable by others \(mode 0644\)/)
  })

  // Kubernetes mounts a Secret into a pod with fsGroup as root:<fsGroup>, mode 0440: readable by
  // the container's group and nobody else. Shown with a real uid/gid switch (this needs root to
  // chown and to run the CLI as uid 1000; CI here runs as root).
  it('a file mounted for our group (root:1000 0440) is accepted as uid 1000; 0444 is not', () => {
    const uid = process.getuid?.()
    const runAs = uid === 0 ? { uid: 1000, gid: 1000 } : {}
    const owner = uid === 0 ? 0 : (uid ?? 0)
    chmodSync(dir, 0o755)
    const mounted = file('mounted.password', 0o440)
    const everyone = file('everyone.password', 0o444)
    if (uid === 0) {
      chownSync(mounted, owner, 1000)
      chownSync(everyone, owner, 1000)
    }
    const ps = (passwordFile: string) =>
      spawnSync(
        process.execPath,
        [
          CLI,
          'ps',
          '--etcd',
          'http://127.0.0.1:1',
          '--etcd-user',
          'u',
          '--etcd-password-file',
          passwordFile,
        ],
        { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env, HOME: tmpdir() }, ...runAs },
      )
    const everyoneRun = ps(everyone)
    expect(everyoneRun.status).toBe(2)
    expect(everyoneRun.stderr).toMatch(/readable by others \(mode 0444\)/)
    const mountedRun = ps(mounted)
    if (uid === 0) {
      // Past the file check: it got as far as etcd, which is not there.
      expect(mountedRun.stderr).toMatch(/cannot reach etcd/)
      expect(mountedRun.status).toBe(1)
    } else {
      // Our own group-readable file is ours to chmod: refused.
      expect(mountedRun.status).toBe(2)
    }
  })
})
