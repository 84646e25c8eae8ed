import { z } from 'zod'
import { PROCEDURE_KINDS } from '../protocol/procedure-kind.js'
import { ROLE_PATTERN } from '../service/role.js'

/** The phone book record format version this code writes and reads. */
export const RECORD_VERSION = 1

/** Load figures an instance publishes with its record, refreshed at a bounded rate. */
export const loadSchema = z.object({
  /** Requests being served right now. */
  inflight: z.number().int().nonnegative(),
  /** Mean event-loop delay over the last refresh interval, milliseconds. */
  eventLoopDelayMs: z.number().nonnegative(),
  /** CPU used over the last refresh interval, in cores (1 = one core busy). */
  cpu: z.number().nonnegative(),
  /** Resident set size, bytes. */
  rss: z.number().int().nonnegative(),
})
export type Load = z.infer<typeof loadSchema>

/** The value stored at `/<namespace>/services/<role>/<id>`: one live instance. */
export const phoneBookRecordSchema = z.object({
  /** Record format version; readers skip versions they do not know. */
  v: z.literal(RECORD_VERSION),
  role: z.string().regex(ROLE_PATTERN),
  /** Instance id; equals the key's last segment. */
  id: z.string().min(1).max(128),
  /** Base URL; procedures are served at `<url>/trpc/<path>`. */
  url: z.url({ protocol: /^https?$/ }),
  /** The service's version string (package version by default). */
  version: z.string(),
  /** Hash of `procedures`: equal hashes mean the same contract. */
  contract: z.string(),
  procedures: z.record(z.string(), z.enum(PROCEDURE_KINDS)),
  load: loadSchema,
  /** ISO 8601 time the instance started. */
  startedAt: z.iso.datetime(),
  /** Host name the instance runs on. */
  host: z.string(),
  pid: z.number().int().nonnegative(),
})
export type PhoneBookRecord = z.infer<typeof phoneBookRecordSchema>

/** Every instance of a role lives under this prefix. */
export function rolePrefix(namespace: string, role: string): string {
  return `/${namespace}/services/${role}/`
}

/** Everything the framework keeps for a namespace lives under this prefix. */
export function servicesPrefix(namespace: string): string {
  return `/${namespace}/services/`
}

export function instanceKey(namespace: string, role: string, id: string): string {
  return `${rolePrefix(namespace, role)}${id}`
}

export type RecordParse = { ok: true; record: PhoneBookRecord } | { ok: false; reason: string }

/** Parse a raw phone book value read at `key`; never throws. */
export function parseRecord(key: string, raw: string): RecordParse {
  let json: unknown
  try {
    json = JSON.parse(raw)
  } catch {
    return { ok: false, reason: `record at ${key} is not JSON` }
  }
  const parsed = phoneBookRecordSchema.safeParse(json)
  if (!parsed.success) {
    const where = parsed.error.issues
      .map((issue) => `${issue.path.join('.') || '(record)'}: ${issue.message}`)
      .join('; ')
    return { ok: false, reason: `record at ${key} is invalid: ${where}` }
  }
  const expectedSuffix = `/services/${parsed.data.role}/${parsed.data.id}`
  if (!key.endsWith(expectedSuffix)) {
    return {
      ok: false,
      reason: `record at ${key} names role '${parsed.data.role}' and id '${parsed.data.id}', which do not match its key`,
    }
  }
  return { ok: true, record: parsed.data }
}
