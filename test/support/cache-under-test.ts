import { afterAll, beforeAll } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import cache from '../../services/cache/index.js'
import { startInProcess } from './in-process.js'

/**
 * One example `cache` instance in this process on its own etcd, for a test file that sends it
 * requests by hand: `url` once started, and `query`/`mutate` over tRPC's HTTP protocol.
 */
export function useCacheUnderTest(namespace: string) {
  let etcd: EtcdServer | undefined
  let running: RunningInstance | undefined
  const target = {
    url: '',
    /** The instance id (its answers name it). */
    id: '',
    /** Its etcd and namespace, for a framework client (`connect()`) of its own. */
    etcdEndpoint: '',
    namespace,
    query: (path: string, input: unknown) =>
      fetch(`${target.url}/trpc/${path}?input=${encodeURIComponent(JSON.stringify(input))}`),
    mutate: (path: string, body: string) =>
      fetch(`${target.url}/trpc/${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      }),
  }
  beforeAll(async () => {
    etcd = await EtcdServer.start()
    running = await startInProcess(cache, etcd.endpoint, namespace)
    target.url = running.instance.url
    target.id = running.instance.id
    target.etcdEndpoint = etcd.endpoint
  })
  afterAll(async () => {
    await running?.stop()
    await etcd?.dispose()
  })
  return target
}
