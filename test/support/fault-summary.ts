import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join, resolve } from 'node:path'

/** One fault a reliability test broke things with, and what it cost. */
export interface FaultRow {
  /** What was broken, e.g. "kill -9 etcd leader (3-member cluster)". */
  fault: string
  /** Calls made by the test's load while the fault happened and until recovery. */
  calls: number
  failed: number
  /** Instances lost (killed, or their phone book record gone for a while). */
  lost: number
  /** How many of the lost came back; undefined when they were not meant to (killed for good). */
  recovered?: number
  /** Instances watched. */
  instances: number
  /** Time from the fault (or its end) until everything was back, ms; undefined when not applicable. */
  recoverMs?: number
  note?: string
}

/** Rows are written here by test workers and printed by the global teardown (vitest globalSetup). */
export const FAULTS_DIR = resolve(import.meta.dirname, '../../.tmp/faults')

/** Records a row for the suite's closing summary, and prints it at once. */
export function recordFault(row: FaultRow): void {
  mkdirSync(FAULTS_DIR, { recursive: true })
  appendFileSync(join(FAULTS_DIR, `${process.pid}.jsonl`), `${JSON.stringify(row)}\n`)
  console.log(`[fault] ${formatRow(row).join(' | ')}`)
}

function formatRow(row: FaultRow): string[] {
  return [
    row.fault,
    String(row.calls),
    String(row.failed),
    `${row.lost}/${row.instances}`,
    row.lost === 0 || row.recovered === undefined ? '–' : `${row.recovered}/${row.lost}`,
    row.recoverMs === undefined ? '–' : `${row.recoverMs} ms`,
    row.note ?? '',
  ]
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
