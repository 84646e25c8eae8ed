import { spawn } from 'node:child_process'
import { expect, it } from 'vitest'
import { servicesPrefix } from '../../framework/registry/record.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { alive, CLI, REPO_ROOT, SpawnedInstance } from '../support/instance.js'
import { waitFor } from '../support/wait.js'

// `framework dev --local` killed with -9 cannot stop its instances: each notices that it was
// re-parented and stops itself (lease revoked, exit), so no orphan keeps serving or registering.

const fixture = useEtcd('dev-killed')

it('kill -9 of framework dev --local: every instance stops itself and its record goes', async () => {
  const namespace = fixture.namespace()
  const dev = new SpawnedInstance(
    spawn(process.execPath, [CLI, 'dev', '--local', '--no-watch'], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        ETCD_ENDPOINTS: fixture.etcd.endpoint,
        FRAMEWORK_NAMESPACE: namespace,
        FRAMEWORK_TTL: '10',
        NO_COLOR: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
  let pids: number[] = []
  try {
    await waitFor(
      'every instance of the example app registered',
      async () => {
        const values = await fixture.probe.client
          .getAll()
          .prefix(servicesPrefix(namespace))
          .strings()
        pids = Object.values(values).map((value) => (JSON.parse(value) as { pid: number }).pid)
        return pids.length === 4
      },
      60_000,
      100,
    )
    await dev.kill('SIGKILL')
    const killedAt = Date.now()
    // The TTL is 10 s: records gone before it means the instances revoked their leases (each
    // notices its parent gone within 1 s, then drains: up to 1 s of idle-connection grace).
    await waitFor('every instance to exit', () => pids.every((pid) => !alive(pid)), 9_000, 50)
    const keys = await fixture.probe.client.getAll().prefix(servicesPrefix(namespace)).keys()
    expect(keys).toEqual([])
    expect(Date.now() - killedAt).toBeLessThan(9_000)
  } finally {
    await dev.kill('SIGKILL')
    for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL')
  }
}, 90_000)
