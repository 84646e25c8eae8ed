import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Reporter, TestModule, TestRunEndReason } from 'vitest/node'
import { clearFaults, FAULTS_DIR, faultTable, readFaults } from './fault-table.js'

/**
 * vitest reporter: empties the fault rows when a run starts and prints them as one table when it
 * ends (also written to .tmp/faults/summary.md), so a run of the suite ends with what each fault
 * cost. The table's first line says whether the run was green: a table printed after a failing
 * run says so, and is not one to copy into the README.
 */
export default class FaultReporter implements Reporter {
  onTestRunStart(): void {
    clearFaults()
  }

  onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<unknown>,
    reason: TestRunEndReason,
  ): void {
    const rows = readFaults()
    if (rows.length === 0) return
    let failedTests = 0
    for (const module of testModules) {
      for (const _ of module.children.allTests('failed')) failedTests++
    }
    const failedModules = testModules.filter((module) => module.state() === 'failed').length
    const failedRows = rows.filter((row) => row.result !== 'pass').length
    const green =
      reason === 'passed' &&
      failedTests === 0 &&
      failedModules === 0 &&
      unhandledErrors.length === 0 &&
      failedRows === 0
    const verdict = green
      ? `green run: every test passed (${rows.length} faults)`
      : `NOT A GREEN RUN: ${failedTests} failed test(s), ${failedModules} failed file(s), ` +
        `${unhandledErrors.length} unhandled error(s), ${failedRows} FAIL row(s); run ended '${reason}'`
    const table = faultTable(rows)
    mkdirSync(FAULTS_DIR, { recursive: true })
    writeFileSync(join(FAULTS_DIR, 'summary.md'), `${verdict}\n\n${table}\n`)
    process.stdout.write(`\nReliability summary (one row per fault), ${verdict}:\n\n${table}\n\n`)
  }
}
