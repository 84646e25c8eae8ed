import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO_ROOT, spawnInstance, testEnv } from '../support/instance.js'

// Call-token settings a service refuses to start with: one line naming the variable and the fix,
// exit 2, and the secret itself never printed.

const dir = mkdtempSync(join(tmpdir(), 'bad-secret-'))
const secretFile = (name: string, text: string, mode: number) => {
  const file = join(dir, name)
  writeFileSync(file, text)
  chmodSync(file, mode)
  return file
}
const LONG = 'the-real-secret-value-is-never-printed-0123456789'

describe('bad call-token settings stop the instance: one line, exit 2', () => {
  it.each([
    [
      'FRAMEWORK_AUTH',
      'token without a secret',
      { FRAMEWORK_AUTH: 'token' },
      /FRAMEWORK_SECRET_FILE/,
    ],
    ['FRAMEWORK_AUTH', 'an unknown mode', { FRAMEWORK_AUTH: 'jwt' }, /token .* or none/],
    [
      'FRAMEWORK_SECRET',
      'too short',
      { FRAMEWORK_SECRET: 'short' },
      /5 bytes; use at least 32 bytes/,
    ],
    [
      'FRAMEWORK_SECRET_FILE',
      'unreadable',
      { FRAMEWORK_SECRET_FILE: join(dir, 'missing') },
      /cannot read it \(ENOENT\)/,
    ],
    [
      'FRAMEWORK_SECRET_FILE',
      'world-readable',
      { FRAMEWORK_SECRET_FILE: secretFile('open', LONG, 0o644) },
      /readable by every user \(mode 644\); chmod 600 it/,
    ],
    [
      'FRAMEWORK_SECRET_PREVIOUS_FILE',
      'world-readable',
      {
        FRAMEWORK_SECRET: LONG,
        FRAMEWORK_SECRET_PREVIOUS_FILE: secretFile('previous', LONG, 0o604),
      },
      /chmod 600 it/,
    ],
  ])('%s %s → one line, exit 2', async (variable, _what, env, message) => {
    const instance = spawnInstance('cache', {
      appRoot: REPO_ROOT,
      env: { ...testEnv('http://127.0.0.1:1', 'x'), ...env },
    })
    expect(await instance.exited).toBe(2)
    const lines = instance.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(new RegExp(`^framework: ${variable}=.* is invalid: `))
    expect(lines[0]).toMatch(message)
    expect(lines[0]).not.toContain(LONG)
  })
})
