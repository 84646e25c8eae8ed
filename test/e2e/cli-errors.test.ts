import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { frameworkTarball } from '../support/framework-package.js'
import { CLI, REPO_ROOT } from '../support/instance.js'

let workdir: string
let app: string

interface ComposeService {
  build?: unknown
  image?: string
  command?: string[]
  environment?: Record<string, string>
  // biome-ignore lint/suspicious/noExplicitAny: docker-compose config's output, read as plain data
  healthcheck?: any
  depends_on?: Record<string, unknown>
  network_mode?: string
  ports?: (string | { host_ip?: string; published: number; target: number })[]
}

/** The services of `docker-compose config`'s output. */
const composeServices = (text: string) =>
  (parse(text) as { services: Record<string, ComposeService> }).services

function cli(args: string[], cwd: string, env: Record<string, string | undefined> = {}) {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    cwd,
    env: { ...process.env, ETCD_ENDPOINTS: undefined, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

beforeAll(() => {
  workdir = mkdtempSync(join(tmpdir(), 'framework-cli-errors-'))
  app = join(workdir, 'app')
  expect(cli(['new', app, '--skip-install', '--framework', frameworkTarball()], workdir).code).toBe(
    0,
  )
  // Instead of `npm install`: the framework linked in (its dist/ is built by the globalSetup).
  mkdirSync(join(app, 'node_modules'))
  symlinkSync(REPO_ROOT, join(app, 'node_modules', 'framework'), 'dir')
})

afterAll(() => {
  rmSync(workdir, { recursive: true, force: true })
})

describe('every error path prints one line and exits non-zero', () => {
  const cases: [string, () => string[], () => string, RegExp, Record<string, string>?][] = [
    ['unknown command', () => ['frobnicate'], () => app, /unknown command 'frobnicate'/],
    [
      'new into a non-empty dir',
      () => ['new', app, '--skip-install'],
      () => workdir,
      /is not empty/,
    ],
    [
      'generate with a bad role',
      () => ['generate', 'service', 'Bad_Role'],
      () => app,
      /invalid role 'Bad_Role'/,
    ],
    [
      'generate over an existing service',
      () => ['generate', 'service', 'hello'],
      () => app,
      /already exists; refusing to overwrite/,
    ],
    [
      'generate with a missing dep',
      () => ['generate', 'service', 'orders', '--deps', 'nope'],
      () => app,
      /--deps names 'nope'.*framework generate service nope/,
    ],
    [
      'generate with a bad port',
      () => ['generate', 'service', 'orders', '--port', 'x'],
      () => app,
      /--port x is invalid/,
    ],
    [
      'generate outside an app',
      () => ['generate', 'service', 'orders'],
      () => workdir,
      /has no package\.json/,
    ],
    ['routes outside an app', () => ['routes'], () => workdir, /no services in/],
    [
      'ps with etcd unreachable',
      () => ['ps', '--etcd', 'http://127.0.0.1:1'],
      () => app,
      /cannot reach etcd at http:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\).*ETCD_ENDPOINTS/,
    ],
    [
      'ps with a bad --etcd',
      () => ['ps', '--etcd', 'ftp://x'],
      () => app,
      /ETCD_ENDPOINTS="ftp:\/\/x" is invalid/,
    ],
    ['watch with a bad role', () => ['watch', 'Nope'], () => app, /invalid role "Nope"/],
    [
      'call without a procedure',
      () => ['call', 'hello'],
      () => app,
      /'hello' is not <role>\.<procedure>/,
    ],
    [
      'call with bad JSON',
      () => ['call', 'hello.ping', '{oops'],
      () => app,
      /input is not valid JSON/,
    ],
    [
      'call with etcd unreachable',
      () => [
        'call',
        'hello.ping',
        '{"name":"a"}',
        '--etcd',
        'http://127.0.0.1:1',
        '--timeout',
        '1500',
      ],
      () => app,
      /SERVICE_UNAVAILABLE: .*hello/,
    ],
    [
      'call with a bad timeout',
      () => ['call', 'hello.ping', '{}', '--timeout', 'soon'],
      () => app,
      /--timeout soon is invalid/,
    ],
    ['compose outside an app', () => ['compose'], () => workdir, /no services in/],
    [
      'compose with a bad network',
      () => ['compose', '--network', 'mesh'],
      () => app,
      /--network.*mesh.*invalid|Allowed choices/,
    ],
    [
      'dev with bad --replicas',
      () => ['dev', '--local', '--replicas', 'hello=zero'],
      () => app,
      /--replicas "hello=zero" is invalid/,
    ],
    [
      'dev --replicas for a missing role',
      () => ['dev', '--local', '--replicas', 'nope=2'],
      () => app,
      /--replicas names 'nope'/,
    ],
    [
      'dev without etcd',
      () => ['dev', '--local'],
      () => app,
      /cannot run '\/nonexistent\/etcd'.*apt-get install -y etcd-server/,
      { ETCD_BIN: '/nonexistent/etcd' },
    ],
    ['start of a missing service', () => ['start', 'nope'], () => app, /no service 'nope'/],
  ]
  for (const [what, args, cwd, message, env] of cases) {
    it(what, () => {
      const result = cli(args(), cwd(), env)
      expect(result.code, result.stdout + result.stderr).not.toBe(0)
      const lines = result.stderr.trim().split('\n')
      expect(lines, result.stderr).toHaveLength(1)
      expect(lines[0]).toMatch(message)
    })
  }
})

describe('compose', () => {
  it('writes a docker-compose.yml that docker-compose config accepts, bridge and host variants', () => {
    expect(
      cli(['generate', 'service', 'orders', '--deps', 'hello', '--port', '4300'], app).code,
    ).toBe(0)
    for (const network of ['bridge', 'host']) {
      const written = cli(['compose', '--network', network, '--replicas', 'hello=3'], app)
      expect(written.code, written.stderr).toBe(0)
      const config = spawnSync('docker-compose', ['config'], { cwd: app, encoding: 'utf8' })
      expect(config.status, config.stderr).toBe(0)
      expect(config.stdout).toContain('condition: service_healthy')
      expect(config.stdout).toMatch(/replicas: 3/)
      if (network === 'host') expect(config.stdout).toContain('network_mode: host')
      // Nothing exposes procedures: no gateway.
      expect(Object.keys(composeServices(config.stdout)).sort()).toEqual([
        'etcd',
        'hello',
        'orders',
      ])
    }
  })

  it('with a role exposing procedures: a gateway service, the only published port (bridge), or listening on --gateway-port (host)', () => {
    const orders = join(app, 'services/orders/index.ts')
    const original = readFileSync(orders, 'utf8')
    writeFileSync(
      orders,
      original.replace("role: 'orders', router", "role: 'orders', router, expose: ['ping']"),
    )
    try {
      for (const network of ['bridge', 'host'] as const) {
        const written = cli(['compose', '--network', network, '--gateway-port', '8181'], app)
        expect(written.code, written.stderr).toBe(0)
        expect(written.stdout).toContain('gateway on port 8181')
        const config = spawnSync('docker-compose', ['config'], { cwd: app, encoding: 'utf8' })
        expect(config.status, config.stderr).toBe(0)
        const services = composeServices(config.stdout)
        const gateway = services.gateway!
        // The exposing role's image (it holds every bundle): nothing more to build.
        expect(gateway.image).toBe('app-orders:dev')
        expect(gateway.build).toBeUndefined()
        expect(gateway.command).toEqual([
          'node',
          'node_modules/framework/dist/cli/bin.js',
          'gateway',
          '--built',
        ])
        expect(gateway.environment).toMatchObject({
          ETCD_ENDPOINTS: network === 'host' ? 'http://127.0.0.1:2379' : 'http://etcd:2379',
          FRAMEWORK_NAMESPACE: 'app',
          GATEWAY_PORT: '8181',
          HOST: network === 'host' ? '127.0.0.1' : '0.0.0.0',
        })
        expect(gateway.healthcheck.test.join(' ')).toContain('/readyz')
        expect(gateway.depends_on).toEqual({
          etcd: { condition: 'service_healthy' },
          orders: { condition: 'service_started' },
        })
        if (network === 'host') {
          expect(gateway.network_mode).toBe('host')
          expect(gateway.ports).toBeUndefined()
        } else {
          // The gateway's port is the only one published on every interface; etcd's is on
          // loopback, for the host's CLI.
          // docker-compose config writes some in the long form, some in the short one.
          const published = Object.entries(services).flatMap(([name, service]) =>
            (service.ports ?? []).map((port) =>
              typeof port === 'string'
                ? `${name} ${port.replace(/\/tcp$/, '')}`
                : `${name} ${port.host_ip ? `${port.host_ip}:` : ''}${port.published}:${port.target}`,
            ),
          )
          expect(published).toEqual(['etcd 127.0.0.1:2379:2379', 'gateway 8181:8181'])
        }
      }
    } finally {
      writeFileSync(orders, original)
    }
  })

  it('refuses to overwrite a docker-compose.yml it did not write', () => {
    writeFileSync(join(app, 'docker-compose.yml'), 'services: {}\n')
    const result = cli(['compose'], app)
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/not generated by framework compose/)
  })

  it("the repo's own docker-compose.yml is the generated one", () => {
    const config = spawnSync('docker-compose', ['config', '-q'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    })
    expect(config.status, config.stderr).toBe(0)
  })
})
