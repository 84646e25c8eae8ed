import { afterAll, beforeAll, it } from 'vitest'
import { watchRole } from '../../clients/watch.js'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { killAll, type SpawnedInstance, spawnInstance, testEnv } from '../support/instance.js'
import { waitFor } from '../support/wait.js'

let etcd: EtcdServer
const running: SpawnedInstance[] = []

beforeAll(async () => {
  etcd = await EtcdServer.start()
})

afterAll(async () => {
  await killAll(running)
  await etcd.dispose()
})

it('clients/watch.ts prints adds, removes and the address it would pick every tick', async () => {
  const namespace = 'watch-client'
  const lines: string[] = []
  const stop = new AbortController()
  const watching = watchRole({
    role: 'cache',
    etcdEndpoints: etcd.endpoint,
    namespace,
    intervalMs: 100,
    write: (line) => lines.push(line),
    signal: stop.signal,
  })
  await waitFor('an empty tick', () =>
    lines.some((l) => l.includes("no live instance of role 'cache'")),
  )

  const cache = spawnInstance('cache', { env: testEnv(etcd.endpoint, namespace) })
  running.push(cache)
  const { url, id } = await cache.listening()
  await waitFor('the add line', () => lines.some((l) => l.includes(`+ cache ${id} ${url}`)))
  await waitFor('a tick picking it', () =>
    lines.some((l) => l.includes(`→ cache ${id} ${url} (1 live)`)),
  )

  await cache.kill('SIGTERM')
  await waitFor('the remove line', () => lines.some((l) => l.includes(`- cache ${id} ${url}`)))
  stop.abort()
  await watching
})
