import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { defineService, initService } from '../../framework/index.js'
import { type RunningInstance, startInstance } from '../../framework/runtime/boot.js'
import { loadConfig } from '../../framework/runtime/config.js'
import type { AnyServiceDefinition } from '../../framework/service/define-service.js'
import { testEnv } from '../support/instance.js'
import { OtlpReceiver, SERVER } from '../support/otlp-receiver.js'
import { waitFor } from '../support/wait.js'

// ctx.log is per call: its lines carry the procedure, the request id and the trace.

const s = initService()
const logging = defineService({
  role: 'call-log',
  router: s.router({
    note: s.procedure.query(({ ctx }) => {
      ctx.log.info('noted')
      return 'ok'
    }),
  }),
})

type Line = Record<string, unknown>
const NS = 'call-log'
let etcd: EtcdServer
let receiver: OtlpReceiver
const instances: { running: RunningInstance; lines: Line[] }[] = []

/** An instance in this process whose log lines are kept; traced when `otlp` is given. */
async function start(definition: AnyServiceDefinition, otlp?: string) {
  const lines: Line[] = []
  const log = pino({ level: 'info' }, { write: (text: string) => lines.push(JSON.parse(text)) })
  const saved = { ...process.env }
  // Tracing is set up from the environment at boot.
  if (otlp) {
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = otlp
    process.env.OTEL_BSP_SCHEDULE_DELAY = '50'
  }
  try {
    const config = loadConfig(testEnv(etcd.endpoint, NS), { namespace: NS })
    const running = await startInstance({
      definition,
      config,
      app: { namespace: NS, version: '0.0.0' },
      log,
    })
    instances.push({ running, lines })
    return { url: running.instance.url, lines }
  } finally {
    process.env = saved
  }
}

beforeAll(async () => {
  etcd = await EtcdServer.start()
  receiver = await OtlpReceiver.start()
})

afterAll(async () => {
  for (const { running } of instances) await running.stop()
  await receiver?.close()
  await etcd?.dispose()
})

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT = '00f067aa0ba902b7'

describe('ctx.log per call', () => {
  it('untraced: procedure, request id, and the trace id the caller sent (no span of its own)', async () => {
    const { url, lines } = await start(logging)
    for (const path of ['/_rpc/note', '/trpc/note']) {
      const response = await fetch(`${url}${path}`, {
        headers: { 'x-request-id': `r${path}`, traceparent: `00-${TRACE}-${PARENT}-01` },
      })
      expect(response.status).toBe(200)
      const line = lines.find((l) => l.msg === 'noted' && l.requestId === `r${path}`)
      expect(line).toMatchObject({ role: 'call-log', procedure: 'note', trace_id: TRACE })
      expect(line).not.toHaveProperty('span_id')
    }
    // Without metadata: still the procedure.
    await fetch(`${url}/_rpc/note`)
    expect(lines.filter((l) => l.msg === 'noted').at(-1)).toMatchObject({ procedure: 'note' })
    expect(lines.filter((l) => l.msg === 'noted').at(-1)).not.toHaveProperty('trace_id')
  })

  it('traced: trace_id and span_id name the SERVER span of the call', async () => {
    const { url, lines } = await start(logging, receiver.endpoint)
    for (const path of ['/_rpc/note', '/trpc/note']) {
      const mark = receiver.spans.length
      const response = await fetch(`${url}${path}`, {
        headers: { 'x-request-id': `t${path}`, traceparent: `00-${TRACE}-${PARENT}-01` },
      })
      expect(response.status).toBe(200)
      const line = lines.find((l) => l.msg === 'noted' && l.requestId === `t${path}`)
      await waitFor('the span at the receiver', () =>
        receiver.spans.slice(mark).some((span) => span.kind === SERVER),
      )
      const span = receiver.spans.slice(mark).find((span) => span.kind === SERVER)!
      expect(span).toMatchObject({ traceId: TRACE, parentSpanId: PARENT, service: 'call-log' })
      expect(line).toMatchObject({
        role: 'call-log',
        procedure: 'note',
        trace_id: TRACE,
        span_id: span.spanId,
      })
    }
  })
})
