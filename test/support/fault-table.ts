// The rows of the reliability summary: their shape, their files under .tmp/faults, the table.
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join, resolve } from 'node:path'

/** What a reliability test measured about one fault (every figure counted by the test). */
export interface FaultMeasures {
  /** Calls made by the test's load while the fault happened and until recovery. */
  calls?: number
  /** Of those, failed (errors, wrong answers, stalls). */
  failed?: number
  /** Instances the fault took out of the phone book (killed, or their record gone a while). */
  lost?: number
  /** Of the lost, back in the phone book at the end; undefined when killed for good. */
  recovered?: number
  /** Instances in the phone book before the fault. */
  instances?: number
  /** From the fault (or its end) until everything was back, ms. */
  recoverMs?: number
  note?: string
}

/** One row of the suite's closing table. */
export interface FaultRow extends FaultMeasures {
  /** What was broken, e.g. "kill -9 etcd leader (3-member cluster)". */
  fault: string
  /** 'pass' only when every assertion about this fault held. */
  result: 'pass' | 'FAIL'
  /** The test that broke it: `<file> > <test name>`. */
  test: string
}

/** Rows are written here by test workers and printed by the fault reporter (fault-report.ts). */
export const FAULTS_DIR = resolve(import.meta.dirname, '../../.tmp/faults')

const dash = (value: number | undefined, unit = '') =>
  value === undefined ? '–' : `${value}${unit}`

export function formatRow(row: FaultRow): string[] {
  return [
    row.fault,
    row.result,
    dash(row.calls),
    dash(row.failed),
    row.lost === undefined ? '–' : `${row.lost}/${dash(row.instances)}`,
    row.lost === undefined || row.lost === 0 || row.recovered === undefined
      ? '–'
      : `${row.recovered}/${row.lost}`,
    dash(row.recoverMs, ' ms'),
    row.note ?? '',
  ]
}

/** Appends a row to this process's file of rows (and prints it). */
export function writeRow(row: FaultRow): void {
  mkdirSync(FAULTS_DIR, { recursive: true })
  appendFileSync(join(FAULTS_DIR, `${process.pid}.jsonl`), `${JSON.stringify(row)}\n`)
  console.log(`[fault] ${formatRow(row).join(' | ')}`)
}

export function readFaults(dir = FAULTS_DIR): FaultRow[] {
  let files: string[]
  try {
    files = readdirSync(dir).filter((file) => file.endsWith('.jsonl'))
  } catch {
    return []
  }
  return files.flatMap((file) =>
    readFileSync(join(dir, file), 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as FaultRow),
  )
}

export function clearFaults(dir = FAULTS_DIR): void {
  rmSync(dir, { recursive: true, force: true })
}

/** The summary as a markdown table, rows sorted by fault. */
export function faultTable(rows: readonly FaultRow[]): string {
  const header = [
    'fault',
    'result',
    'calls',
    'failed',
    'instances lost',
    'recovered',
    'time to recover',
    'notes',
  ]
  const lines = [...rows]
    .sort((a, b) => a.fault.localeCompare(b.fault))
    .map((row) => `| ${formatRow(row).join(' | ')} |`)
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...lines].join(
    '\n',
  )
}
