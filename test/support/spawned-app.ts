import { instanceKey } from '../../framework/registry/record.js'
import type { SpawnedInstance } from './instance.js'

/** A spawned instance once it has logged that it listens and is registered. */
export interface Started {
  instance: SpawnedInstance
  url: string
  id: string
  /** Its phone book key. */
  key: string
  /** When it was spawned, epoch ms (this process's clock). */
  spawnedAt: number
  /** The time on its 'registered in etcd' log line, epoch ms. */
  registeredAt: number
}

/** How a test file spawns `framework start <role>` (an etcd fixture's `spawn`). */
export type Spawn = (role: string, namespace: string) => SpawnedInstance

/** Spawns `role` and resolves once it listens and is registered. */
export async function startRegistered(
  spawn: Spawn,
  role: string,
  namespace: string,
): Promise<Started> {
  const spawnedAt = Date.now()
  const instance = spawn(role, namespace)
  const { url, id } = await instance.listening()
  const registered = await instance.waitForLog('registered in etcd')
  return {
    instance,
    url,
    id,
    key: instanceKey(namespace, role, id),
    spawnedAt,
    registeredAt: registered.time as number,
  }
}

/** An already spawned instance's URL, id and phone book key, once it listens and is registered. */
export async function registered(instance: SpawnedInstance, namespace: string, role = 'cache') {
  const { url, id } = await instance.listening()
  await instance.waitForLog('registered in etcd')
  return { url, id, key: instanceKey(namespace, role, id) }
}

/** The example app in `namespace`: three cache instances, then one api depending on cache. */
export async function startExampleApp(spawn: Spawn, namespace: string) {
  const caches = await Promise.all([1, 2, 3].map(() => startRegistered(spawn, 'cache', namespace)))
  const api = await startRegistered(spawn, 'api', namespace)
  return { namespace, caches, api, all: [...caches, api] }
}

/** Answers per instance id, from samples that say who served them. */
export function countBy(samples: readonly { servedBy?: string }[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const sample of samples) {
    if (sample.servedBy) counts[sample.servedBy] = (counts[sample.servedBy] ?? 0) + 1
  }
  return counts
}

/** A cache instance's own counters (`cache.stats`). */
export async function cacheStats(url: string): Promise<{ hits: number; misses: number }> {
  const response = await fetch(`${url}/trpc/stats`, { signal: AbortSignal.timeout(5_000) })
  const body = (await response.json()) as { result: { data: { hits: number; misses: number } } }
  return body.result.data
}
