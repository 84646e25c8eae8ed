import { type SummaryRow, summaryTable } from './harness.js'

/** `npm run bench` runs every benchmark; `npm run bench -- <name>` runs one. */
const BENCHMARKS: Record<
  string,
  () => Promise<{ run: () => Promise<{ table: string; summary: SummaryRow[] }> }>
> = {
  'call-overhead': () => import('./call-overhead.js'),
  propagation: () => import('./propagation.js'),
  failover: () => import('./failover.js'),
  scale: () => import('./scale.js'),
  boot: () => import('./boot.js'),
  'hash-balance': () => import('./hash-balance.js'),
  gateway: () => import('./gateway.js'),
  footprint: () => import('./footprint.js'),
  overload: () => import('./overload.js'),
}

const wanted = process.argv.slice(2)
const unknown = wanted.filter((name) => !(name in BENCHMARKS))
if (unknown.length > 0) {
  process.stderr.write(
    `unknown benchmark ${unknown.join(', ')}; available: ${Object.keys(BENCHMARKS).join(', ')}\n`,
  )
  process.exit(2)
}
const started = Date.now()
const summaries: SummaryRow[] = []
for (const name of wanted.length > 0 ? wanted : Object.keys(BENCHMARKS)) {
  process.stdout.write(`\n## ${name}\n\n`)
  const benchmark = await BENCHMARKS[name]!()
  const { table, summary } = await benchmark.run()
  process.stdout.write(`${table}\n`)
  summaries.push(...summary)
}
process.stdout.write(`\n## summary\n\n${summaryTable(summaries)}\n`)
process.stdout.write(`\n(${Math.round((Date.now() - started) / 1000)} s; JSON in bench/results/)\n`)
process.exit(0)
