import { get } from 'node:http'
import { get as getTls } from 'node:https'
import { METRICS_PATH } from '../telemetry/metrics-endpoint.js'
import { parseSamples, sumSamples } from './metrics-text.js'

/** Longest wait for one instance's /metrics: `ps` stays a quick one-shot. */
const SCRAPE_TIMEOUT_MS = 1_000
/** The longest /metrics text read (an instance's is a few tens of KiB). */
const MAX_METRICS_BYTES = 4 * 2 ** 20

const NAMES = new Set(['framework_server_calls_total', 'process_start_time_seconds'])

/** An instance's served-call totals at one moment. */
interface CallTotals {
  calls: number
  /** Calls answered with a 5xx status. */
  errors: number
  /** When the instance's process started, epoch s (its own clock). */
  startedAt: number
  /** When they were read, epoch ms (this process's clock). */
  at: number
}

/** What `ps` shows of an instance's calls: rate and share of 5xx answers over a window. */
export interface CallRate {
  callsPerSecond: number
  /** 5xx answers / calls over the window (0 when there were no calls). */
  errorRate: number
  /** The window the rate is over, s: the time between two scrapes, or the instance's uptime. */
  windowSeconds: number
}

/** The text of `url`'s /metrics, or undefined (unreachable, slow, not 200, too large). */
export function fetchMetrics(url: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    let target: URL
    try {
      target = new URL(METRICS_PATH, url)
    } catch {
      return resolve(undefined)
    }
    const request = (target.protocol === 'https:' ? getTls : get)(
      target,
      { timeout: SCRAPE_TIMEOUT_MS },
      (response) => {
        if (response.statusCode !== 200) {
          response.resume()
          return resolve(undefined)
        }
        let text = ''
        response.setEncoding('utf8')
        response.on('data', (chunk: string) => {
          text += chunk
          if (text.length > MAX_METRICS_BYTES) request.destroy()
        })
        response.on('end', () => resolve(text))
        response.on('error', () => resolve(undefined))
        response.on('aborted', () => resolve(undefined))
      },
    )
    request.on('timeout', () => request.destroy())
    request.on('error', () => resolve(undefined))
  })
}

async function callTotals(url: string): Promise<CallTotals | undefined> {
  const text = await fetchMetrics(url)
  if (text === undefined) return undefined
  const samples = parseSamples(text, NAMES)
  const start = samples.find((sample) => sample.name === 'process_start_time_seconds')
  if (!start) return undefined
  let errors = 0
  for (const sample of samples) {
    if (sample.name === 'framework_server_calls_total' && Number(sample.labels.code) >= 500) {
      errors += sample.value
    }
  }
  return {
    calls: sumSamples(samples, 'framework_server_calls_total'),
    errors,
    startedAt: start.value,
    at: Date.now(),
  }
}

function rate(first: CallTotals, second: CallTotals, windowSeconds: number): CallRate | undefined {
  const calls = second.calls - first.calls
  // A restart between the scrapes (counters back to zero, another start time) has no rate.
  if (calls < 0 || second.startedAt !== first.startedAt || windowSeconds <= 0) return undefined
  return {
    callsPerSecond: calls / windowSeconds,
    errorRate: calls === 0 ? 0 : (second.errors - first.errors) / calls,
    windowSeconds,
  }
}

/**
 * Each instance's call rate and error rate, by URL; undefined for one whose /metrics cannot be
 * read. With `windowMs`, from two scrapes that far apart (the rate now); without, from one
 * scrape over the instance's uptime (an average since it started, and no wait).
 */
export async function callRates(
  urls: readonly string[],
  windowMs?: number,
): Promise<Map<string, CallRate | undefined>> {
  const first = await Promise.all(urls.map(callTotals))
  const rates = new Map<string, CallRate | undefined>()
  if (windowMs === undefined) {
    urls.forEach((url, i) => {
      const totals = first[i]
      const zero = totals && { ...totals, calls: 0, errors: 0 }
      const uptime = totals ? totals.at / 1000 - totals.startedAt : 0
      rates.set(url, totals && zero ? rate(zero, totals, uptime) : undefined)
    })
    return rates
  }
  await new Promise((resolve) => setTimeout(resolve, windowMs))
  const second = await Promise.all(urls.map((url, i) => (first[i] ? callTotals(url) : undefined)))
  urls.forEach((url, i) => {
    const [a, b] = [first[i], second[i]]
    rates.set(url, a && b ? rate(a, b, (b.at - a.at) / 1000) : undefined)
  })
  return rates
}

/** `12.5/s`, or `–` for an instance that could not be scraped. */
export function formatRate(rate: CallRate | undefined): string {
  if (!rate) return '–'
  const value = rate.callsPerSecond
  return `${value >= 100 ? Math.round(value) : value.toFixed(1)}/s`
}

/** `0.0%`, or `–` for an instance that could not be scraped. */
export function formatErrorRate(rate: CallRate | undefined): string {
  return rate ? `${(rate.errorRate * 100).toFixed(1)}%` : '–'
}
