/**
 * A reader of the few samples the CLI needs from a Prometheus text exposition (`/metrics`), by
 * hand: the CLI's one-shots stay lean and never load prom-client.
 */

/** One sample line: `name{label="value",…} number`. */
export interface MetricSample {
  name: string
  labels: Readonly<Record<string, string>>
  value: number
}

const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

/** The samples of the metrics `names` holds (comments, other metrics and bad lines skipped). */
export function parseSamples(text: string, names: ReadonlySet<string>): MetricSample[] {
  const samples: MetricSample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const brace = line.indexOf('{')
    const space = line.lastIndexOf(' ')
    if (space <= 0) continue
    const name = brace === -1 || brace > space ? line.slice(0, space) : line.slice(0, brace)
    if (!names.has(name)) continue
    const value = Number(line.slice(space + 1))
    if (Number.isNaN(value)) continue
    const labels: Record<string, string> = {}
    if (brace !== -1 && brace < space) {
      for (const [, label, raw] of line.slice(brace, space).matchAll(LABEL)) {
        labels[label!] = raw!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
      }
    }
    samples.push({ name, labels, value })
  }
  return samples
}

/** The sum of `name`'s samples whose labels include every pair of `match`. */
export function sumSamples(
  samples: readonly MetricSample[],
  name: string,
  match: Readonly<Record<string, string>> = {},
): number {
  let sum = 0
  for (const sample of samples) {
    if (sample.name !== name) continue
    if (Object.entries(match).every(([label, value]) => sample.labels[label] === value)) {
      sum += sample.value
    }
  }
  return sum
}
