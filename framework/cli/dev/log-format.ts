import { type LifecycleEvent, lifecycleEventOf } from '../../internal/lifecycle-event.js'
import type { Styler } from '../output.js'

/** pino levels worth a word; info (30) is the quiet default. */
const LEVELS: Record<number, string> = { 20: 'debug', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' }
/** Fields shown after the message: the few a person acts on. */
const EXTRA_FIELDS = ['url', 'reason', 'err', 'key']

/** One stdout line of an instance as `framework dev` shows it, with what it reports. */
export interface InstanceLine {
  /** The line to print after the instance's prefix. */
  text: string
  /** The lifecycle step the line reports, from its `event` field. */
  event: LifecycleEvent | undefined
  /** The JSON fields of a log line; undefined for a line that is not one. */
  fields: Record<string, unknown> | undefined
}

/** Turns a JSON log line into `LEVEL message key=value…`; any other line is shown as it is. */
export function formatInstanceLine(raw: string, style: Styler): InstanceLine {
  let fields: Record<string, unknown> | undefined
  try {
    const parsed: unknown = JSON.parse(raw)
    if (
      typeof parsed === 'object' &&
      parsed !== null &&
      typeof (parsed as { msg?: unknown }).msg === 'string'
    ) {
      fields = parsed as Record<string, unknown>
    }
  } catch {}
  if (!fields) return { text: raw, event: undefined, fields: undefined }
  const extras = EXTRA_FIELDS.filter((field) => fields[field] !== undefined).map((field) => {
    const value = fields[field]
    return `${field}=${typeof value === 'string' ? value : JSON.stringify(value)}`
  })
  const level = LEVELS[typeof fields.level === 'number' ? fields.level : 30]
  const text = `${level ? `${level} ` : ''}${fields.msg as string}${extras.length ? ` ${style.dim(extras.join(' '))}` : ''}`
  return { text, event: lifecycleEventOf(fields), fields }
}
