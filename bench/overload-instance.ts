/**
 * The instance the overload benchmark loads: one `busy.work` query that takes as long as asked,
 * booted by the runtime in this process (the bench imports no test fixture). Says `ready` with its
 * URL over IPC once registered; stops on `stop`.
 */
import { z } from 'zod'
import { defineService, initService } from '../framework/index.js'
import { startInstance } from '../framework/runtime/boot.js'
import { loadConfig } from '../framework/runtime/config.js'
import { benchLog, type ChildMessage, sleep } from './support.js'

const t = initService()
const busy = defineService({
  role: 'busy',
  router: t.router({
    work: t.procedure
      .input(z.object({ ms: z.number().int().min(0).max(10_000) }))
      .query(async ({ input }) => {
        await sleep(input.ms)
        return { ok: true }
      }),
  }),
})

const config = loadConfig(process.env, { namespace: 'bench-overload' })
const running = await startInstance({
  definition: busy,
  config,
  app: { namespace: config.namespace, version: '0.0.0' },
  log: benchLog(),
})
/**
 * Instance-side time of each shed HTTP request, from its `request` event to its answer handed to
 * the socket: what shedding costs here, without the load generator's queueing.
 */
let shedMs: number[] = []
running.server.on('request', (_req, res) => {
  const started = performance.now()
  res.once('finish', () => {
    if (res.statusCode === 503) shedMs.push(performance.now() - started)
  })
})
while (!running.registration.registered) await sleep(20)
process.send?.({ type: 'ready', url: running.instance.url })
process.on('message', (message: ChildMessage) => {
  if (message.type === 'shed-times') {
    process.send?.({ type: 'shed-times', ms: shedMs })
    shedMs = []
  }
  if (message.type === 'stop') void running.stop().then(() => process.exit(0))
})

/** Its type, for the benchmark's typed client. */
export default busy
