import { spawnSync } from 'node:child_process'
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { frameworkTarball } from '../support/framework-package.js'
import { CLI, REPO_ROOT } from '../support/instance.js'

// Bad input of the commands that ship an app (build, start --built, k8s, compose, upgrade, setup):
// one line naming the input and the fix, and the exit code of ERROR_CODES.

let workdir: string
let app: string

function cli(args: string[], cwd = app) {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    cwd,
    env: { ...process.env, ETCD_ENDPOINTS: undefined, NO_COLOR: '1' },
    encoding: 'utf8',
    timeout: 60_000,
  })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

/** The one line a failed command printed on stderr. */
function failure(result: { code: number | null; stderr: string }, code: number): string {
  expect(result.code, result.stderr).toBe(code)
  const lines = result.stderr.trim().split('\n')
  expect(lines, result.stderr).toHaveLength(1)
  return lines[0]!
}

beforeAll(() => {
  workdir = realpathSync(mkdtempSync(join(tmpdir(), 'framework-ship-errors-')))
  app = join(workdir, 'shop')
  expect(cli(['new', app, '--skip-install', '--framework', frameworkTarball()], workdir).code).toBe(
    0,
  )
  mkdirSync(join(app, 'node_modules'))
  symlinkSync(REPO_ROOT, join(app, 'node_modules', 'framework'), 'dir')
  expect(cli(['generate', 'service', 'inventory']).code).toBe(0)
  expect(cli(['generate', 'service', 'orders', '--deps', 'inventory']).code).toBe(0)
})

afterAll(() => {
  rmSync(workdir, { recursive: true, force: true })
})

describe('framework build', () => {
  it("a service importing another service's code at runtime fails the build naming both files", () => {
    const orders = join(app, 'services/orders/index.ts')
    const original = readFileSync(orders, 'utf8')
    try {
      writeFileSync(
        orders,
        original.replace(
          "import type inventory from '../inventory/index.js'",
          "import inventory from '../inventory/index.js'\nconsole.log(inventory.role)",
        ),
      )
      const line = failure(cli(['build']), 2)
      expect(line).toMatch(
        /services\/orders\/index\.ts imports services\/inventory\/index\.ts at runtime.*import type/,
      )
      expect(existsSync(join(app, '.framework/build/orders.mjs'))).toBe(false)
    } finally {
      writeFileSync(orders, original)
    }
    expect(cli(['build']).code).toBe(0)
  })

  it('code that does not compile fails the build with its file and line', () => {
    const hello = join(app, 'services/hello/index.ts')
    const original = readFileSync(hello, 'utf8')
    try {
      appendFileSync(hello, '\nconst broken = (\n')
      expect(failure(cli(['build']), 2)).toMatch(
        /framework build failed: services\/hello\/index\.ts:\d+:\d+: /,
      )
    } finally {
      writeFileSync(hello, original)
    }
  })

  it('build of a role that does not exist', () => {
    expect(failure(cli(['build', 'nope']), 2)).toMatch(/no service 'nope' in services\//)
  })
})

describe('framework start --built', () => {
  it('without a bundle: names the role and framework build', () => {
    rmSync(join(app, '.framework/build'), { recursive: true, force: true })
    expect(failure(cli(['start', 'hello', '--built']), 2)).toMatch(
      /no bundle of 'hello' \(\.framework\/build\/hello\.mjs\): run framework build/,
    )
  })

  it('a bundle older than its sources is refused, naming the role, the file and framework build', () => {
    expect(cli(['build']).code).toBe(0)
    const hello = join(app, 'services/hello/index.ts')
    const original = readFileSync(hello, 'utf8')
    try {
      appendFileSync(hello, '\n// changed after the build\n')
      expect(failure(cli(['start', 'hello', '--built']), 2)).toMatch(
        /the bundle of 'hello' is older than its sources \(services\/hello\/index\.ts changed\): run framework build/,
      )
    } finally {
      writeFileSync(hello, original)
    }
  })
})

describe('framework gateway --built', () => {
  const settings = () => join(app, 'gateway.ts')
  const orders = () => join(app, 'services/orders/index.ts')
  let original: string

  beforeAll(() => {
    original = readFileSync(orders(), 'utf8')
    writeFileSync(
      orders(),
      original.replace("role: 'orders', router", "role: 'orders', router, expose: true"),
    )
    expect(cli(['build']).code).toBe(0)
  })

  afterAll(() => {
    writeFileSync(orders(), original)
    rmSync(settings(), { force: true })
  })

  it('gateway.ts without a bundle: names it and framework build', () => {
    writeFileSync(
      settings(),
      "import { defineGateway } from 'framework'\nexport default defineGateway({})\n",
    )
    expect(failure(cli(['gateway', '--built']), 2)).toMatch(
      /no bundle of gateway\.ts \(\.framework\/build\/_gateway\.mjs\): run framework build/,
    )
  })

  it('gateway.ts changed after the build is refused, naming it and framework build', () => {
    expect(cli(['build']).code).toBe(0)
    expect(existsSync(join(app, '.framework/build/_gateway.mjs'))).toBe(true)
    appendFileSync(settings(), '// changed after the build\n')
    expect(failure(cli(['gateway', '--built']), 2)).toMatch(
      /the bundle of gateway\.ts is older than its sources \(gateway\.ts changed\): run framework build/,
    )
  })

  it("an exposing role's stale bundle is refused the same way", () => {
    expect(cli(['build']).code).toBe(0)
    try {
      appendFileSync(orders(), '\n// changed after the build\n')
      expect(failure(cli(['gateway', '--built']), 2)).toMatch(
        /the bundle of 'orders' is older than its sources \(services\/orders\/index\.ts changed\): run framework build/,
      )
    } finally {
      writeFileSync(
        orders(),
        original.replace("role: 'orders', router", "role: 'orders', router, expose: true"),
      )
    }
  })

  it("gateway.ts importing a service's code at runtime fails the build naming both files", () => {
    writeFileSync(
      settings(),
      "import { defineGateway } from 'framework'\nimport orders from './services/orders/index.js'\nexport default defineGateway({ deps: { [orders.role]: {} } })\n",
    )
    expect(failure(cli(['build']), 2)).toMatch(
      /gateway\.ts imports services\/orders\/index\.ts at runtime: gateway\.ts may import a service's types only/,
    )
  })

  it("compose: a service named 'gateway' beside an exposing role", () => {
    rmSync(settings(), { force: true })
    expect(cli(['generate', 'service', 'gateway']).code).toBe(0)
    try {
      expect(failure(cli(['compose']), 2)).toMatch(
        /a service is named 'gateway', the name of the edge that fronts orders: rename services\/gateway/,
      )
    } finally {
      rmSync(join(app, 'services/gateway'), { recursive: true, force: true })
    }
  })
})

describe('framework k8s', () => {
  it('--replicas 0 for a role', () => {
    expect(failure(cli(['k8s', '--replicas', 'inventory=0']), 2)).toMatch(
      /--replicas "inventory=0" is invalid/,
    )
  })

  for (const [what, option, message] of [
    ['replicas', 'replicas: 0', /replicas/],
    ['port', 'port: 70000', /port/],
  ] as const) {
    it(`a role whose ${what} is invalid: exit 2, one line`, () => {
      const inventory = join(app, 'services/inventory/index.ts')
      const original = readFileSync(inventory, 'utf8')
      try {
        writeFileSync(
          inventory,
          original.replace("role: 'inventory', router", `role: 'inventory', router, ${option}`),
        )
        const line = failure(cli(['k8s']), 2)
        expect(line).toMatch(message)
        expect(line).toMatch(/inventory/)
      } finally {
        writeFileSync(inventory, original)
      }
    })
  }

  it('a namespace Kubernetes cannot use', () => {
    expect(failure(cli(['k8s', '--namespace', 'Shop_App']), 2)).toMatch(
      /namespace 'Shop_App' is not a Kubernetes name/,
    )
  })
})

describe('compose, upgrade', () => {
  it('compose of an app without a build script says what to add', () => {
    const path = join(app, 'package.json')
    const original = readFileSync(path, 'utf8')
    try {
      const pkg = JSON.parse(original) as { scripts: Record<string, string> }
      delete pkg.scripts.build
      writeFileSync(path, JSON.stringify(pkg))
      expect(failure(cli(['compose']), 2)).toMatch(/"build": "framework build"/)
    } finally {
      writeFileSync(path, original)
    }
  })

  it('compose with a bad --gateway-port', () => {
    expect(failure(cli(['compose', '--gateway-port', '0']), 2)).toMatch(
      /--gateway-port 0 is invalid: use a port number 1-65535/,
    )
  })

  it('upgrade outside an app', () => {
    expect(failure(cli(['upgrade', '--skip-install'], workdir), 2)).toMatch(
      /no dependencies\.framework in package\.json/,
    )
  })

  it('upgrade replaces the vendored tarball and the dependency', () => {
    const result = cli(['upgrade', '--skip-install', '--framework', frameworkTarball()])
    expect(result.code, result.stderr).toBe(0)
    const pkg = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>
    }
    expect(pkg.dependencies.framework).toBe('file:vendor/framework-0.1.0.tgz')
    expect(existsSync(join(app, 'vendor/framework-0.1.0.tgz'))).toBe(true)
  })
})

describe('npm run setup (bin/setup.mjs)', () => {
  /** A PATH holding only the named binaries of this machine. */
  function pathWith(binaries: string[]): string {
    const dir = mkdtempSync(join(workdir, 'bin-'))
    for (const binary of binaries) {
      const found = spawnSync('sh', ['-c', `command -v ${binary}`], {
        encoding: 'utf8',
      }).stdout.trim()
      symlinkSync(realpathSync(found), join(dir, binary))
    }
    return dir
  }

  function setup(cwd: string, path: string) {
    const env: NodeJS.ProcessEnv = { PATH: path, HOME: process.env.HOME }
    const result = spawnSync(process.execPath, [join(app, 'bin/setup.mjs')], {
      cwd,
      env,
      encoding: 'utf8',
      timeout: 120_000,
    })
    return { code: result.status, stdout: result.stdout, stderr: result.stderr }
  }

  it('no etcd and no root/sudo/brew/docker: one line saying what to install, nothing installed', () => {
    const fresh = join(workdir, 'fresh')
    mkdirSync(fresh)
    writeFileSync(
      join(fresh, 'package.json'),
      '{"name":"fresh","version":"1.0.0","dependencies":{"zod":"^4"}}',
    )
    const result = setup(fresh, pathWith(['sh', 'node', 'npm']))
    const line = failure(result, 1)
    expect(line).toMatch(/etcd is missing and cannot be installed here \(no root, sudo or brew\)/)
    expect(line).toMatch(/apt-get install -y etcd-server|brew install etcd/)
    expect(result.stdout).toBe('')
    expect(existsSync(join(fresh, 'node_modules'))).toBe(false)
  })

  it('etcd on the PATH: npm install, then done', () => {
    const fresh = join(workdir, 'fresh-ok')
    mkdirSync(fresh)
    writeFileSync(join(fresh, 'package.json'), '{"name":"fresh-ok","version":"1.0.0"}')
    const result = setup(fresh, pathWith(['sh', 'node', 'npm', 'etcd']))
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toContain('setup: $ npm install --no-audit --no-fund')
    expect(result.stdout).toContain('setup: etcd: etcd is on the PATH')
  })
})
