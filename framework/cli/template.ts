import { readFileSync } from 'node:fs'
import { join } from 'node:path'

export const TEMPLATES_DIR = join(import.meta.dirname, 'templates')

/** Renders `templates/<name>`: every `{{key}}` must have a value, every value must be used. */
export function renderTemplate(name: string, values: Record<string, string>): string {
  const text = readFileSync(join(TEMPLATES_DIR, name), 'utf8')
  const used = new Set<string>()
  const rendered = text.replace(/\{\{(\w+)\}\}/g, (_match, key: string) => {
    const value = values[key]
    if (value === undefined) throw new Error(`template ${name} needs a value for {{${key}}}`)
    used.add(key)
    return value
  })
  const unused = Object.keys(values).filter((key) => !used.has(key))
  if (unused.length > 0) throw new Error(`template ${name} has no {{${unused.join('}}, {{')}}}`)
  return rendered
}
