import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { clearFaults, FAULTS_DIR, faultTable, readFaults } from './fault-summary.js'

/**
 * vitest globalSetup: empties the fault rows before the run and prints them as one table after it
 * (also written to .tmp/faults/summary.md), so a run of the suite ends with what each fault cost.
 */
export default function setup(): () => void {
  clearFaults()
  return () => {
    const rows = readFaults()
    if (rows.length === 0) return
    const table = faultTable(rows)
    writeFileSync(join(FAULTS_DIR, 'summary.md'), `${table}\n`)
    process.stdout.write(`\nReliability summary (one row per fault):\n\n${table}\n\n`)
  }
}
