import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CLI, REPO_ROOT, testEnv } from '../support/instance.js'

// A bad defineService is bad input, like a bad role: one line naming the setting, exit 2.

const FIXTURE_APP = resolve(REPO_ROOT, 'test/fixtures/app')

function cli(args: string[]) {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    cwd: FIXTURE_APP,
    // etcd is never reached: the definition is refused while the module loads.
    env: { ...process.env, NODE_ENV: 'test', ...testEnv('http://127.0.0.1:1', 'x') },
    encoding: 'utf8',
    timeout: 60_000,
  })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

describe('framework start of a service whose defineService is invalid', () => {
  it.each([
    [
      'badreplicas',
      /^framework: invalid replicas 0 for service 'badreplicas': use a whole number >= 1$/,
    ],
    [
      'badport',
      /^framework: invalid port 70000 for service 'badport': use a whole number 1-65535$/,
    ],
    ['selfdep', /^framework: service 'selfdep' lists itself in deps; remove 'selfdep' from deps$/],
    [
      'badbalancer',
      /^framework: service 'badbalancer', deps\.slow\.balancer: unknown balancer "fastest": use one of 'p2c', 'round-robin', 'random', 'least-load', or \{ hash: \(\{ path, input \}\) => key \}/,
    ],
    [
      'badinflight',
      /^framework: service 'badinflight', deps\.slow\.maxInflight: invalid 2\.5; use a whole number >= 1 \(the most calls in flight to it at once\), or leave it out for no cap$/,
    ],
  ])('%s → one line naming the setting, exit 2', (role, message) => {
    const result = cli(['start', role])
    expect(result.code, result.stdout + result.stderr).toBe(2)
    const lines = result.stderr.trim().split('\n')
    expect(lines, result.stderr).toHaveLength(1)
    expect(lines[0]).toMatch(message)
  })
})
