import { parseRecord, servicesPrefix } from '../registry/record.js'
import { EtcdGateway } from './etcd-gateway.js'
import { etcdUnreachable, type PhoneBookTarget } from './phone-book-target.js'

export interface InstanceRow {
  role: string
  id: string
  url: string
  ageSeconds: number
  inflight: number
  cpu: number
  rssMiB: number
  contract: string
  version: string
  host: string
  pid: number
  /** Seconds left on the lease (undefined if etcd did not say). */
  ttlLeft: number | undefined
  grantedTtl: number | undefined
  /** Keepalives are late: less than half the lease TTL is left. */
  stale: boolean
}

export interface PhoneBook {
  instances: InstanceRow[]
  malformed: { key: string; reason: string }[]
}

const DEADLINE_MS = 3_000

/** The live phone book of a namespace, with each lease's remaining TTL (etcd's JSON gateway). */
export async function readPhoneBook(target: PhoneBookTarget): Promise<PhoneBook> {
  const gateway = new EtcdGateway(target.etcdEndpoints, Date.now() + DEADLINE_MS, target.etcdAccess)
  const kvs = await gateway.range(servicesPrefix(target.namespace)).catch((err: unknown) => {
    throw etcdUnreachable(target, err)
  })
  const instances: InstanceRow[] = []
  const malformed: PhoneBook['malformed'] = []
  const now = Date.now()
  await Promise.all(
    kvs.map(async (kv) => {
      const parsed = parseRecord(kv.key, kv.value)
      if (!parsed.ok) {
        malformed.push({ key: kv.key, reason: parsed.reason })
        return
      }
      const { record } = parsed
      const lease =
        kv.lease === '0'
          ? undefined
          : await gateway.leaseTimeToLive(kv.lease).catch(() => undefined)
      const ttlLeft = lease?.ttl
      const grantedTtl = lease?.grantedTtl
      instances.push({
        role: record.role,
        id: record.id,
        url: record.url,
        ageSeconds: Math.max(0, Math.round((now - Date.parse(record.startedAt)) / 1000)),
        inflight: record.load.inflight,
        cpu: record.load.cpu,
        rssMiB: Math.round(record.load.rss / 2 ** 20),
        contract: record.contract,
        version: record.version,
        host: record.host,
        pid: record.pid,
        ttlLeft,
        grantedTtl,
        stale:
          ttlLeft === undefined ||
          grantedTtl === undefined ||
          ttlLeft < 0 ||
          ttlLeft < grantedTtl / 2,
      })
    }),
  )
  instances.sort((a, b) => a.role.localeCompare(b.role) || a.id.localeCompare(b.id))
  malformed.sort((a, b) => a.key.localeCompare(b.key))
  return { instances, malformed }
}

export function formatAge(seconds: number): string {
  if (seconds < 120) return `${seconds}s`
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`
  return `${Math.round(seconds / 3600)}h`
}
