import { pino } from 'pino'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { EtcdServer } from '../../framework/cli/local-etcd.js'
import { DependencyCallError } from '../../framework/client/call-errors.js'
import { connect } from '../../framework/client/connect.js'
import type { RunningInstance } from '../../framework/runtime/boot.js'
import { ServiceDefinitionError } from '../../framework/service/service-definition-error.js'
import busy, { runs } from '../fixtures/app/services/busy/index.js'
import { startInProcess } from '../support/in-process.js'
import { waitFor } from '../support/wait.js'

const NAMESPACE = 'bulkhead'
const CAP = 100
let etcd: EtcdServer
let running: RunningInstance

beforeAll(async () => {
  etcd = await EtcdServer.start()
  running = await startInProcess(busy, etcd.endpoint, NAMESPACE)
})

afterAll(async () => {
  await running?.stop()
  await etcd?.dispose()
})

it(`deps maxInflight ${CAP}: the ${CAP + 1}st concurrent call fails at once naming the role and the limit; the ${CAP} succeed`, async () => {
  const connection = connect<{ busy: typeof busy }>({
    deps: { busy: { maxInflight: CAP } },
    etcdEndpoints: etcd.endpoint,
    namespace: NAMESPACE,
    log: pino({ level: 'silent' }),
  })
  try {
    const { deps } = connection
    await waitFor('busy to be listed', async () => (await deps.busy.ran()).instance !== '')
    const ranBefore = runs.queries
    let settled = 0
    const admitted = Array.from({ length: CAP }, () =>
      deps.busy.work({ ms: 2_000 }).finally(() => settled++),
    )
    await waitFor(`the ${CAP} calls to run`, () => runs.running === CAP)
    const err = await deps.busy.work({ ms: 0 }).then(
      () => undefined,
      (error: unknown) => error,
    )
    // Failed while every admitted call was still running, and never reached the instance.
    expect(settled).toBe(0)
    expect(err).toBeInstanceOf(DependencyCallError)
    expect((err as DependencyCallError).code).toBe('SERVICE_UNAVAILABLE')
    expect((err as Error).message).toBe(
      `busy.work: ${CAP} calls to role 'busy' already in flight, the most deps.busy.maxInflight allows; the call was not sent. Raise deps.busy.maxInflight, add instances of 'busy', or send fewer calls at once`,
    )
    const results = await Promise.all(admitted)
    expect(results).toHaveLength(CAP)
    expect(runs.queries - ranBefore).toBe(CAP)
    // Room again once they answered.
    await expect(deps.busy.work({ ms: 0 })).resolves.toMatchObject({
      instance: running.instance.id,
    })
  } finally {
    await connection.close()
  }
}, 60_000)

it('connect() refuses a bad maxInflight naming the field', () => {
  expect(() =>
    connect<{ busy: typeof busy }>({
      deps: { busy: { maxInflight: -1 } },
      etcdEndpoints: etcd.endpoint,
      namespace: NAMESPACE,
    }),
  ).toThrow(ServiceDefinitionError)
  expect(() =>
    connect<{ busy: typeof busy }>({
      deps: { busy: { maxInflight: 2.5 } },
      etcdEndpoints: etcd.endpoint,
      namespace: NAMESPACE,
    }),
  ).toThrow(
    /^connect\(\{ deps \}\): deps\.busy\.maxInflight: invalid 2\.5; use a whole number >= 1/,
  )
})
