import { Endpoint } from '../../framework/discovery/endpoint.js'
import { instanceKey, type Load, type PhoneBookRecord } from '../../framework/registry/record.js'

/** An instance of role `cache` as a caller sees it, for balancer tests (no server behind it). */
export function endpoint(
  id: string,
  options: { inflight?: number; load?: Partial<Load> } = {},
): Endpoint {
  const record: PhoneBookRecord = {
    v: 1,
    role: 'cache',
    id,
    url: `http://127.0.0.1:1/${id}`,
    version: '1.0.0',
    contract: 'c',
    procedures: { get: 'query' },
    load: { inflight: 0, eventLoopDelayMs: 0, cpu: 0, rss: 1, ...options.load },
    startedAt: new Date(0).toISOString(),
    host: 'h',
    pid: 1,
  }
  const result = new Endpoint(instanceKey('shop', 'cache', id), record)
  result.inflight = options.inflight ?? 0
  return result
}

/** How many times each id is picked over `n` picks. */
export function tally(pick: () => Endpoint, n = 500): Map<string, number> {
  const counts = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    const id = pick().id
    counts.set(id, (counts.get(id) ?? 0) + 1)
  }
  return counts
}
