import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { parseRecord, servicesPrefix } from '../../framework/registry/record.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { alive, CLI, REPO_ROOT, SpawnedInstance } from '../support/instance.js'
import { waitFor } from '../support/wait.js'

// `framework dev --local` restarts what a change touches: a shared lib/ module restarts the roles
// that import it and no other; package.json restarts every role.

const fixture = useEtcd('dev-watch')
let workdir: string
let app: string

function cli(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    cwd: app,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

const greetingModule = (text: string) => `export const greeting = '${text}'\n`

beforeAll(() => {
  workdir = mkdtempSync(join(tmpdir(), 'framework-dev-watch-'))
  app = join(workdir, 'shop')
  expect(spawnSync(process.execPath, [CLI, 'new', app, '--skip-install']).status).toBe(0)
  // What `npm install` does for the app's file: dependency on the framework.
  mkdirSync(join(app, 'node_modules'))
  symlinkSync(REPO_ROOT, join(app, 'node_modules', 'framework'), 'dir')
  rmSync(join(app, 'services', 'hello'), { recursive: true })
  for (const role of ['alpha', 'beta']) expect(cli(['generate', 'service', role]).code).toBe(0)
  mkdirSync(join(app, 'lib'))
  writeFileSync(join(app, 'lib', 'greeting.ts'), greetingModule('first'))
  writeFileSync(
    join(app, 'services', 'alpha', 'index.ts'),
    `import { defineService, initService } from 'framework'
import { greeting } from '../../lib/greeting.js'

const t = initService()

export default defineService({
  role: 'alpha',
  router: t.router({ greet: t.procedure.query(() => ({ greeting })) }),
})
`,
  )
})

afterAll(() => {
  rmSync(workdir, { recursive: true, force: true })
})

it('a lib/ module restarts the role importing it, not the other; package.json restarts both', async () => {
  const namespace = fixture.namespace()
  const env = { ETCD_ENDPOINTS: fixture.etcd.endpoint, FRAMEWORK_NAMESPACE: namespace }
  const dev = new SpawnedInstance(
    spawn(process.execPath, [CLI, 'dev', '--local'], {
      cwd: app,
      env: { ...process.env, ...env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
  // dev's own lines are not JSON: SpawnedInstance keeps them with stderr.
  const output = () => dev.stderr
  /** role → the registered instance's id and pid, from the phone book. */
  const registered = async () => {
    const entries = await fixture.probe.client.getAll().prefix(servicesPrefix(namespace)).strings()
    const byRole: Record<string, { id: string; pid: number }> = {}
    for (const [key, value] of Object.entries(entries)) {
      const parsed = parseRecord(key, value)
      if (parsed.ok) byRole[parsed.record.role] = { id: parsed.record.id, pid: parsed.record.pid }
    }
    return byRole
  }
  try {
    await waitFor(
      'alpha and beta registered, files watched',
      async () => {
        const roles = await registered()
        return (
          roles.alpha !== undefined &&
          roles.beta !== undefined &&
          /watching \d+ files/.test(output())
        )
      },
      60_000,
      100,
    )
    const before = await registered()

    writeFileSync(join(app, 'lib', 'greeting.ts'), greetingModule('second'))
    await waitFor(
      'a new alpha instance registered',
      async () => {
        const alpha = (await registered()).alpha
        return alpha !== undefined && alpha.id !== before.alpha!.id
      },
      60_000,
      100,
    )
    const afterLib = await registered()
    expect(afterLib.beta, output()).toEqual(before.beta)
    expect(alive(before.beta!.pid)).toBe(true)
    expect(alive(before.alpha!.pid)).toBe(false)
    const restarts = output().match(/^framework .* changed: restarting .*$/gm)
    expect(restarts, output()).toEqual([
      'framework lib/greeting.ts changed: restarting alpha (1 instance(s))',
    ])
    const called = cli(['call', 'alpha.greet'], env)
    expect(called.code, called.stderr).toBe(0)
    expect(JSON.parse(called.stdout)).toEqual({ greeting: 'second' })

    const packageJson = join(app, 'package.json')
    writeFileSync(packageJson, readFileSync(packageJson, 'utf8'))
    await waitFor(
      'new alpha and beta instances registered',
      async () => {
        const { alpha, beta } = await registered()
        return (
          alpha?.id !== undefined &&
          alpha.id !== afterLib.alpha!.id &&
          beta?.id !== undefined &&
          beta.id !== before.beta!.id
        )
      },
      60_000,
      100,
    )
    expect(output()).toContain(
      'framework package.json changed: restarting alpha, beta (2 instance(s))',
    )

    dev.child.kill('SIGINT')
    expect(await dev.exited).toBe(0)
    expect(await registered()).toEqual({})
  } finally {
    await dev.kill('SIGKILL')
  }
}, 180_000)
