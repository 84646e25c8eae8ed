import { relative, resolve } from 'node:path'
import { expect, onTestFinished } from 'vitest'
import { type FaultMeasures, type FaultRow, writeRow } from './fault-table.js'

const REPO_ROOT = resolve(import.meta.dirname, '../..')

/**
 * One fault of the running test. The test fills in what it measured (`measured`) and, after its
 * assertions about the fault, calls `passed()`. The row is written when the test finishes: a
 * test that failed before `passed()` leaves a FAIL row with whatever it had measured.
 */
export class FaultRecord {
  readonly #measures: FaultMeasures = {}
  #passed = false

  constructor(readonly fault: string) {}

  /** Adds measured figures (call again as more are known). */
  measured(values: FaultMeasures): void {
    Object.assign(this.#measures, values)
  }

  /** Every assertion about this fault has held. */
  passed(): void {
    this.#passed = true
  }

  row(test: string): FaultRow {
    return { fault: this.fault, result: this.#passed ? 'pass' : 'FAIL', test, ...this.#measures }
  }
}

/** Starts the row of `fault` in the running test (see {@link FaultRecord}). */
export function faultRow(fault: string): FaultRecord {
  const record = new FaultRecord(fault)
  const { testPath, currentTestName } = expect.getState()
  const test = `${testPath ? relative(REPO_ROOT, testPath) : '?'} > ${currentTestName ?? '?'}`
  onTestFinished(() => writeRow(record.row(test)))
  return record
}
