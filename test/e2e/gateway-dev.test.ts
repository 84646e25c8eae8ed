import { spawn, spawnSync } from 'node:child_process'
import { expect, it } from 'vitest'
import { freePort } from '../../framework/cli/free-port.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { gatewayReady } from '../support/gateway-process.js'
import { alive, CLI, REPO_ROOT, SpawnedInstance } from '../support/instance.js'
import { waitFor } from '../support/wait.js'

const fixture = useEtcd('gateway-dev')

it('framework dev --local runs the gateway when a service exposes procedures; Ctrl-C stops it too', async () => {
  const namespace = fixture.namespace()
  const port = await freePort()
  const dev = new SpawnedInstance(
    spawn(process.execPath, [CLI, 'dev', '--local', '--no-watch'], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        ETCD_ENDPOINTS: fixture.etcd.endpoint,
        FRAMEWORK_NAMESPACE: namespace,
        GATEWAY_PORT: String(port),
        NO_COLOR: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
  // dev's own lines are not JSON: SpawnedInstance keeps them with stderr.
  const output = () => dev.stderr
  try {
    await waitFor(
      'the gateway line and every instance registered',
      () =>
        output().includes(`framework gateway at http://127.0.0.1:${port} for api:`) &&
        output().includes('framework all 4 instances registered'),
      90_000,
      100,
    )
    const url = `http://127.0.0.1:${port}`
    await gatewayReady(url, 30_000)
    const put = await fetch(`${url}/api/api/put`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key: 'dev', value: 'through the gateway' }),
    })
    expect(put.status).toBe(200)
    const get = await fetch(`${url}/trpc/api.get?input=${encodeURIComponent('{"key":"dev"}')}`)
    expect(((await get.json()) as { result: { data: { value: string } } }).result.data.value).toBe(
      'through the gateway',
    )
    // cache is internal: not reachable through the gateway.
    expect((await fetch(`${url}/trpc/cache.stats`)).status).toBe(404)
    dev.child.kill('SIGINT')
    expect(await dev.exited).toBe(0)
    expect(output()).toMatch(/gateway +\| stopped/)
    await waitFor('the gateway port closed', async () =>
      fetch(`${url}/healthz`).then(
        () => false,
        () => true,
      ),
    )
  } finally {
    if (alive(dev.pid)) await dev.kill('SIGKILL')
  }
}, 150_000)

it("framework routes marks what the gateway reaches: api's get and put, none of cache's", () => {
  const result = spawnSync(process.execPath, [CLI, 'routes', '--json'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  })
  expect(result.status, result.stderr).toBe(0)
  const routes = JSON.parse(result.stdout) as { role: string; path: string; exposed: boolean }[]
  expect(routes.filter((route) => route.exposed).map((r) => `${r.role}.${r.path}`)).toEqual([
    'api.get',
    'api.put',
  ])
  expect(routes.filter((route) => route.role === 'cache').length).toBeGreaterThan(0)
}, 60_000)
