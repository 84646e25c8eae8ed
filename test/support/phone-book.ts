import { Etcd3, type IOptions } from 'etcd3'
import {
  type PhoneBookRecord,
  parseRecord,
  RECORD_VERSION,
  servicesPrefix,
} from '../../framework/registry/record.js'

/** A plain etcd3 client for tests to look at (and tamper with) the phone book. */
export class PhoneBookProbe {
  readonly client: Etcd3

  constructor(
    endpoint: string,
    readonly namespace: string,
    /** TLS credentials or an etcd user, for an etcd that asks for them. */
    options: Partial<IOptions> = {},
  ) {
    this.client = new Etcd3({
      ...options,
      hosts: [endpoint],
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + 2_000 }),
    })
  }

  /** Every key under the namespace's services prefix with its raw value. */
  async entries(): Promise<Record<string, string>> {
    return this.client.getAll().prefix(servicesPrefix(this.namespace)).strings()
  }

  /** Whether `key` exists; an etcd that cannot be read is an error, never a "no". */
  async has(key: string): Promise<boolean> {
    return (await this.client.get(key).string()) !== null
  }

  async record(key: string): Promise<PhoneBookRecord> {
    const raw = await this.client.get(key).string()
    if (raw === null) throw new Error(`no record at ${key}`)
    const parsed = parseRecord(key, raw)
    if (!parsed.ok) throw new Error(parsed.reason)
    return parsed.record
  }

  /** The lease a key is attached to, with its granted TTL. */
  async lease(key: string): Promise<{ id: string; grantedTtl: number; ttl: number }> {
    const response = await this.client.kv.range({ key: Buffer.from(key) })
    const kv = response.kvs[0]
    if (!kv) throw new Error(`no key ${key}`)
    const ttl = await this.client.leaseClient.leaseTimeToLive({ ID: kv.lease })
    return { id: kv.lease, grantedTtl: Number(ttl.grantedTTL), ttl: Number(ttl.TTL) }
  }

  close(): void {
    this.client.close()
  }
}

/** A valid phone book record for tests that write records by hand (this process's pid). */
export function sampleRecord(
  role: string,
  id: string,
  url: string,
  procedures: PhoneBookRecord['procedures'],
): PhoneBookRecord {
  return {
    v: RECORD_VERSION,
    role,
    id,
    url,
    version: '1.0.0',
    contract: 'test',
    procedures,
    load: { inflight: 0, eventLoopDelayMs: 0, cpu: 0, rss: 0 },
    startedAt: new Date().toISOString(),
    host: '127.0.0.1',
    pid: process.pid,
  }
}
