import { pino } from 'pino'
import { z } from 'zod'
import { loadGatewayConfig } from '../../framework/gateway/config.js'
import type { GatewayDefinition } from '../../framework/gateway/define-gateway.js'
import { type RunningGateway, startGateway } from '../../framework/gateway/start-gateway.js'
import { defineService, initService } from '../../framework/index.js'

/** Calls each in-process test service has served, by procedure (to prove a call never arrived). */
export const served = { front: 0, back: 0 }

const b = initService()
/** Internal: never exposed. Says what metadata reached it. */
export const back = defineService({
  role: 'gw-back',
  router: b.router({
    who: b.procedure.query(({ ctx }) => {
      served.back++
      return { requestId: ctx.requestId ?? null, caller: ctx.caller ?? null }
    }),
  }),
})

const f = initService<{ 'gw-back': typeof back }>()
/** Exposed in part: `secret` is not. */
export const front = defineService({
  role: 'gw-front',
  deps: { 'gw-back': true },
  expose: ['who', 'echo', 'sleep', 'save', 'nested.ping'],
  router: f.router({
    who: f.procedure.query(async ({ ctx }) => {
      served.front++
      return {
        own: { requestId: ctx.requestId ?? null, caller: ctx.caller ?? null },
        nested: await ctx.deps['gw-back'].who(),
      }
    }),
    echo: f.procedure
      .input(z.object({ text: z.string().max(100), n: z.number().int().optional() }))
      .query(({ input }) => {
        served.front++
        return input
      }),
    sleep: f.procedure
      .input(z.object({ ms: z.number().int().max(10_000) }))
      .query(async ({ input }) => {
        served.front++
        await new Promise((resolve) => setTimeout(resolve, input.ms))
        return { slept: input.ms }
      }),
    save: f.procedure.input(z.object({ text: z.string() })).mutation(({ input }) => {
      served.front++
      return { saved: input.text }
    }),
    secret: f.procedure.query(() => {
      served.front++
      return 'never through the gateway'
    }),
    nested: f.router({
      ping: f.procedure.query(() => {
        served.front++
        return 'pong' as const
      }),
    }),
  }),
})

const g = initService()
/** Exposed, never started: its calls get 503. */
export const ghost = defineService({
  role: 'gw-ghost',
  expose: true,
  router: g.router({ boo: g.procedure.query(() => 'boo') }),
})

/** A gateway in this process in front of the test services, on a free loopback port. */
export function startTestGateway(
  etcdEndpoint: string,
  namespace: string,
  gateway?: GatewayDefinition,
): Promise<RunningGateway> {
  const config = loadGatewayConfig(
    {
      ETCD_ENDPOINTS: etcdEndpoint,
      FRAMEWORK_NAMESPACE: namespace,
      GATEWAY_PORT: '0',
      HOST: '127.0.0.1',
      FRAMEWORK_DRAIN_TIMEOUT_MS: '5000',
    },
    { namespace },
  )
  return startGateway({
    definitions: [front, back, ghost],
    gateway,
    config,
    app: { namespace, version: '1.0.0' },
    log: pino({ level: 'silent' }),
  })
}
