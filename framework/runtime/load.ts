import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { Load } from '../registry/record.js'

const MiB = 1024 * 1024
const RESOLUTION_MS = 20

/**
 * Samples the load figures published in the phone book. Figures are rounded (0.1 ms, 0.01 core,
 * 1 MiB) so an idle instance's record does not change, and so is not rewritten, every refresh.
 */
export class LoadSampler {
  /** Requests in flight; the HTTP layer counts them. */
  inflight = 0
  readonly #delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS })
  #cpu = process.cpuUsage()
  #at = process.hrtime.bigint()

  constructor() {
    this.#delay.enable()
  }

  /** Figures over the time since the previous sample. */
  sample(): Load {
    const now = process.hrtime.bigint()
    const cpu = process.cpuUsage(this.#cpu)
    const elapsedMicros = Number(now - this.#at) / 1000
    this.#cpu = process.cpuUsage()
    this.#at = now
    // The histogram records whole timer intervals; the delay is what exceeds the resolution.
    const meanDelayMs = Number.isNaN(this.#delay.mean)
      ? 0
      : Math.max(0, this.#delay.mean / 1e6 - RESOLUTION_MS)
    this.#delay.reset()
    return {
      inflight: this.inflight,
      eventLoopDelayMs: Math.round(meanDelayMs * 10) / 10,
      cpu:
        elapsedMicros > 0 ? Math.round(((cpu.user + cpu.system) / elapsedMicros) * 100) / 100 : 0,
      rss: Math.round(process.memoryUsage.rss() / MiB) * MiB,
    }
  }

  close(): void {
    this.#delay.disable()
  }
}
