import { spawnSync } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../../framework/cli/free-port.js'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { frameworkTarball } from '../support/framework-package.js'
import {
  CLI,
  REPO_ROOT,
  type SpawnedInstance,
  spawnInstance,
  testEnv,
} from '../support/instance.js'
import { TmuxSession } from '../support/tmux.js'

// The CLI as a person uses it: typed into a real terminal (tmux), read off the screen. What the
// prompts make is compared with what the same answers as flags make without a terminal.

let workdir: string
const sessions: TmuxSession[] = []
const instances: SpawnedInstance[] = []
let etcd: EtcdServer | undefined

/** A tmux session running the CLI (`node bin.js <args>`), closed after the file. */
function terminal(args: string, cwd: string, env: Record<string, string> = {}): TmuxSession {
  const session = new TmuxSession(`${process.execPath} ${CLI} ${args}`, cwd, env)
  sessions.push(session)
  return session
}

/** The CLI without a terminal (stdin and stdout are pipes). */
function cli(args: string[], cwd: string) {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 120_000,
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

function run(command: string, args: string[], cwd: string) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 240_000 })
  return { code: result.status, output: `${result.stdout}${result.stderr}` }
}

/** Every file under `dir` (relative path → contents), without installed or lock files. */
function tree(dir: string): Record<string, string> {
  const files: Record<string, string> = {}
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const path = relative(dir, join(entry.parentPath, entry.name))
    if (!entry.isFile() || path.startsWith('node_modules') || path === 'package-lock.json') continue
    files[path] = readFileSync(join(dir, path), 'base64')
  }
  return files
}

beforeAll(() => {
  workdir = realpathSync(mkdtempSync(join(tmpdir(), 'framework-terminal-')))
  mkdirSync(join(workdir, 'keys'))
  mkdirSync(join(workdir, 'flags'))
})

afterAll(async () => {
  for (const session of sessions) session.close()
  await Promise.all(instances.map((instance) => instance.kill('SIGKILL')))
  await etcd?.dispose()
  rmSync(workdir, { recursive: true, force: true })
})

describe('prompts', () => {
  const keysApp = () => join(workdir, 'keys', 'shop')
  const flagsApp = () => join(workdir, 'flags', 'shop')

  it('framework new answered by keystrokes makes an app whose tests pass; the same answers as flags make the same files', async () => {
    // The app installs the packed framework; npm answers from its cache where it can.
    const session = terminal(`new --framework ${frameworkTarball()}`, join(workdir, 'keys'), {
      npm_config_prefer_offline: 'true',
    })
    await session.waitFor(/Name of the app\?/)
    session.type('Shop')
    session.press('Enter')
    // A name breaking the rule is re-asked, with the rule shown.
    await session.waitFor(/an app name must be lower-case letters/)
    session.press('BSpace', 'BSpace', 'BSpace', 'BSpace')
    session.type('shop')
    session.press('Enter')
    await session.waitFor(/Its first services\?/)
    session.press('C-u')
    session.type('inventory, orders')
    session.press('Enter')
    await session.waitFor(/Which services does orders call\?/)
    session.press('Space')
    session.press('Enter')
    await session.waitFor(/How should npm run dev run it\?/)
    session.press('Down')
    session.press('Enter')
    const code = await session.exitCode(300_000)
    session.save('new')
    expect(code, session.screen()).toBe(0)
    expect(session.screen()).toMatch(/npm install done in [\d.]+ s/)

    const tests = run('npx', ['vitest', 'run'], keysApp())
    expect(tests.code, tests.output).toBe(0)
    const types = run('npx', ['tsc', '--noEmit'], keysApp())
    expect(types.code, types.output).toBe(0)
    expect(readFileSync(join(keysApp(), 'services/orders/index.ts'), 'utf8')).toContain(
      'deps: { inventory: true }',
    )

    const flags = cli(
      [
        'new',
        'shop',
        '--service',
        'inventory',
        '--service',
        'orders=inventory',
        '--dev',
        'local',
        '--skip-install',
        '--framework',
        frameworkTarball(),
      ],
      join(workdir, 'flags'),
    )
    expect(flags.code, flags.stderr).toBe(0)
    expect(tree(flagsApp())).toEqual(tree(keysApp()))
  }, 420_000)

  it('framework generate service answered by keystrokes (multi-select, hash balancer, exposed) type-checks; flags make the same files', async () => {
    const session = terminal('generate service', keysApp())
    await session.waitFor(/Role of the new service\?/)
    session.type('Report')
    session.press('Enter')
    await session.waitFor(/a role must be lower-case letters/)
    session.press('BSpace', 'BSpace', 'BSpace', 'BSpace', 'BSpace', 'BSpace')
    session.type('report')
    session.press('Enter')
    await session.waitFor(/Which services does report call\?/)
    session.press('Space', 'Down', 'Space')
    await session.waitFor(/◼ inventory[\s\S]*◼ orders/)
    session.press('Enter')
    await session.waitFor(/How should calls to inventory pick an instance\?/)
    session.press('Enter')
    await session.waitFor(/How should calls to orders pick an instance\?/)
    session.press('Down', 'Down', 'Down', 'Down')
    session.press('Enter')
    await session.waitFor(/Which input field of calls to orders/)
    session.type('name')
    session.press('Enter')
    await session.waitFor(/Expose report's procedures/)
    session.type('y')
    const code = await session.exitCode()
    session.save('generate')
    expect(code, session.screen()).toBe(0)
    expect(session.screen()).toContain('create services/report/index.ts')

    const source = readFileSync(join(keysApp(), 'services/report/index.ts'), 'utf8')
    expect(source).toMatch(/deps: \{ inventory: true, orders: \{/)
    expect(source).toContain("?.['name']")
    expect(source).toContain('expose: true')
    const types = run('npx', ['tsc', '--noEmit'], keysApp())
    expect(types.code, types.output).toBe(0)
    const tests = run('npx', ['vitest', 'run'], keysApp())
    expect(tests.code, tests.output).toBe(0)

    const flags = cli(
      [
        'generate',
        'service',
        'report',
        '--deps',
        'inventory,orders',
        '--balancer',
        'orders=hash:name',
        '--expose',
      ],
      flagsApp(),
    )
    expect(flags.code, flags.stderr).toBe(0)
    expect(tree(join(flagsApp(), 'services/report'))).toEqual(
      tree(join(keysApp(), 'services/report')),
    )
  }, 300_000)

  it('Ctrl-C at a prompt writes nothing; without a terminal a missing answer is exit 2 naming its flag', async () => {
    const before = readdirSync(join(keysApp(), 'services')).sort()
    const session = terminal('generate service', keysApp())
    await session.waitFor(/Role of the new service\?/)
    session.type('audit')
    session.press('Enter')
    await session.waitFor(/Which services does audit call\?/)
    session.press('Space')
    session.press('C-c')
    const code = await session.exitCode()
    session.save('cancel')
    expect(code).not.toBe(0)
    expect(session.screen()).toMatch(/cancelled/)
    expect(readdirSync(join(keysApp(), 'services')).sort()).toEqual(before)

    const noRole = cli(['generate', 'service'], keysApp())
    expect(noRole.code).toBe(2)
    expect(noRole.stderr).toMatch(/missing <role> and no terminal to ask on/)
    const noDir = cli(['new'], workdir)
    expect(noDir.code).toBe(2)
    expect(noDir.stderr).toMatch(/missing <dir> and no terminal to ask on/)
    const badName = cli(['new', 'Bad_Name', '--skip-install'], workdir)
    expect(badName.code).toBe(2)
    expect(badName.stderr).toMatch(/cannot name an app 'Bad_Name'/)
    expect(existsSync(join(workdir, 'Bad_Name'))).toBe(false)
    const badBalancer = cli(
      ['generate', 'service', 'audit', '--deps', 'orders', '--balancer', 'orders=fastest'],
      keysApp(),
    )
    expect(badBalancer.code).toBe(2)
    expect(badBalancer.stderr).toMatch(/unknown balancer 'fastest'/)
  }, 120_000)
})

/** framework_server_calls_total of `procedure` summed over the instances' /metrics. */
async function servedCalls(urls: string[], procedure: string): Promise<number> {
  let total = 0
  for (const url of urls) {
    const text = await (await fetch(`${url}/metrics`)).text()
    for (const line of text.split('\n')) {
      if (
        line.startsWith('framework_server_calls_total{') &&
        line.includes(`procedure="${procedure}"`)
      )
        total += Number(line.split(' ').at(-1))
    }
  }
  return total
}

describe('framework console', () => {
  it('completes roles, calls through discovery showing the serving instance, checks input, survives errors, exits cleanly on Ctrl-D', async () => {
    etcd = await EtcdServer.start()
    const namespace = 'console-test'
    const env = testEnv(etcd.endpoint, namespace)
    for (let i = 0; i < 2; i++) instances.push(spawnInstance('cache', { env }))
    const started = await Promise.all(instances.map((instance) => instance.listening()))
    await Promise.all(instances.map((instance) => instance.waitForLog('registered', 30_000)))
    // The example app's services (cache, api) as code, in an app folder of the test's own.
    const app = join(workdir, 'console-app')
    mkdirSync(app)
    symlinkSync(join(REPO_ROOT, 'services'), join(app, 'services'), 'dir')
    writeFileSync(join(app, 'package.json'), '{ "name": "console-app", "type": "module" }\n')

    const session = terminal('console', app, {
      ETCD_ENDPOINTS: etcd.endpoint,
      FRAMEWORK_NAMESPACE: namespace,
    })
    await session.waitFor(/framework> $/m)
    session.type('cac')
    session.press('Tab')
    await session.waitFor(/framework> cache$/m)
    // Procedures complete too, from the records' manifests (and the code).
    session.type('.se')
    session.press('Tab')
    await session.waitFor(/framework> cache\.set$/m)
    session.save('console-tab')
    session.press('C-u')
    session.type('.routes')
    session.press('Enter')
    await session.waitFor(/cache\s+stats\s+query\s+2\s+yes/)
    await session.waitFor(/api\s+put\s+mutation\s+0\s+yes/)
    session.press('C-u')
    session.type('await cache.get({key:"a"})')
    session.press('Enter')
    const served = await session.waitFor(/hit: false/)
    const line = /cache\.get served by (cache-\w+) \(http:\/\/127\.0\.0\.1:\d+\) in [\d.]+ ms/.exec(
      served,
    )
    expect(line, served).not.toBeNull()
    expect(started.map((instance) => instance.id)).toContain(line?.[1])
    session.save('console-call')

    session.type('.ps')
    session.press('Enter')
    await session.waitFor(new RegExp(`${started[0]?.id}[\\s\\S]*|${started[1]?.id}`))
    for (const { id } of started) await session.waitFor(new RegExp(`cache\\s+${id}\\s+http`))

    // api is in the code but has no live instance: one line, and the console stays open.
    session.type('await api.get({key:"a"})')
    session.press('Enter')
    await session.waitFor(/Uncaught SERVICE_UNAVAILABLE: no live instance of role 'api'/)
    session.type('40 + 2')
    session.press('Enter')
    await session.waitFor(/framework> 40 \+ 2\n42/)

    // Invalid input: the zod issues, and no call reaches any instance.
    const urls = started.map((instance) => instance.url)
    const callsBefore = await servedCalls(urls, 'get')
    session.type('await cache.get({key:1})')
    session.press('Enter')
    await session.waitFor(
      /Uncaught BAD_REQUEST: cache\.get not called: invalid input: key: .*expected string/,
    )
    expect(await servedCalls(urls, 'get')).toBe(callsBefore)

    session.type('1 +* )')
    session.press('Enter')
    await session.waitFor(/SyntaxError/)
    session.type('.watch cache')
    session.press('Enter')
    await session.waitFor(/watching cache: 2 live/)
    await instances[1]?.kill('SIGTERM')
    await session.waitFor(new RegExp(`- cache ${started[1]?.id}`))
    session.save('console')

    session.press('C-d')
    // Exits on its own, promptly: no etcd watch or connection keeps the process alive.
    const code = await session.exitCode(15_000)
    session.save('console-exit')
    expect(code).toBe(0)
    expect(session.screen()).toMatch(/bye: 2 watch\(es\) closed/)
    expect(readFileSync(join(app, '.framework/console_history'), 'utf8')).toContain(
      'await cache.get({key:"a"})',
    )
  }, 120_000)
})

describe('progress on long steps', () => {
  it('framework dev in a terminal counts instances as they register, then shows the table', async () => {
    expect(etcd, 'the console test starts etcd').toBeDefined()
    const app = join(workdir, 'keys', 'shop')
    const gatewayPort = await freePort()
    const session = terminal(`dev --local --no-watch --gateway-port ${gatewayPort}`, app, {
      ETCD_ENDPOINTS: etcd?.endpoint ?? '',
      FRAMEWORK_NAMESPACE: 'progress-test',
    })
    // inventory, orders and report: one instance each, counted as each registers.
    const screen = await session.waitFor(/all 3 instances registered/, 90_000)
    session.save('dev-progress')
    const counts = [...screen.matchAll(/(\d)\/3 registered: (\w+)#\d/g)].map((match) => match[1])
    expect(counts, screen).toEqual(['1', '2', '3'])
    session.press('C-c')
    expect(await session.exitCode(60_000)).toBe(0)
    expect(session.screen()).toMatch(/framework stopped/)
  }, 150_000)
})
