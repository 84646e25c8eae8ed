/**
 * Moleculer baseline for call-overhead (0.14 or 0.15, both the same way): spawns
 * bench/moleculer-node.ts (service `cache`) and calls it from a broker in this process over
 * Moleculer's TCP transporter, 127.0.0.1 only, no UDP discovery, each side given the other as a
 * static peer. Before it is handed out, the baseline is checked to do the work the framework
 * does: it answers cache.get's payload and refuses a bad input with a ValidationError.
 */
import { spawn } from 'node:child_process'
import { isDeepStrictEqual } from 'node:util'
import { freePort } from '../framework/cli/free-port.js'
import { LoggingChild } from './instance.js'
import { assertLoopback, LOOPBACK, loopbackTransporter } from './moleculer-loopback.js'
import {
  type Broker,
  loadMoleculer,
  type MoleculerPackage,
  type MoleculerVersion,
} from './moleculer-package.js'

const NODE_ID = 'moleculer-cache'
const CLIENT_ID = 'moleculer-client'

export interface MoleculerBaseline {
  /** The running release, e.g. "0.15.2". */
  installed: string
  /** One `cache.get({ key: 'k' })` through the client broker to the remote node. */
  call: () => Promise<unknown>
  /** Stops the client broker, then the node process (SIGTERM, SIGKILL after 5 s). */
  close: () => Promise<void>
  /** The node process (the broker with the service). */
  pid: number
}

async function twoFreePorts(): Promise<[number, number]> {
  const first = await freePort()
  for (let attempt = 0; attempt < 10; attempt++) {
    const second = await freePort()
    if (second !== first) return [first, second]
  }
  throw new Error('no second free port on 127.0.0.1')
}

async function stopChild(node: LoggingChild): Promise<void> {
  const killer = setTimeout(() => void node.kill('SIGKILL'), 5_000)
  try {
    await node.kill('SIGTERM')
  } finally {
    clearTimeout(killer)
  }
}

/** Throws unless the node answers what cache.get answers and validates its input. */
async function checkBaseline(broker: Broker, pkg: MoleculerPackage): Promise<void> {
  const expected = { value: 'v', hit: true, instance: NODE_ID }
  const answer = await broker.call('cache.get', { key: 'k' })
  if (!isDeepStrictEqual(answer, expected)) {
    throw new Error(
      `cache.get({ key: 'k' }) answered ${JSON.stringify(answer)}, not ${JSON.stringify(expected)}`,
    )
  }
  const refused = await broker.call('cache.get', { key: 1 }).then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  )
  if (!('error' in refused) || !(refused.error instanceof pkg.ValidationError)) {
    throw new Error(
      `cache.get({ key: 1 }) was not refused with a ValidationError (got ${
        'error' in refused ? String(refused.error) : JSON.stringify(refused.value)
      }): the node does not validate, so it would not compare with the framework`,
    )
  }
}

export async function startMoleculer(
  options: {
    /** Which Moleculer (default 0.14). */
    version?: MoleculerVersion
    readyTimeoutMs?: number
    /** How node runs the service node (default through tsx; footprint runs it compiled). */
    script?: string[]
  } = {},
): Promise<MoleculerBaseline> {
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000
  const pkg = await loadMoleculer(options.version ?? '0.14')
  const [nodePort, clientPort] = await twoFreePorts()
  const node = new LoggingChild(
    spawn(
      process.execPath,
      [
        ...(options.script ?? ['--import', 'tsx', 'bench/moleculer-node.ts']),
        '--port',
        String(nodePort),
        '--client-port',
        String(clientPort),
        '--node-id',
        NODE_ID,
        '--client-id',
        CLIENT_ID,
        '--version',
        pkg.version,
        '--exit-with-stdin',
      ],
      { cwd: `${import.meta.dirname}/..`, stdio: ['pipe', 'pipe', 'pipe'] },
    ),
  )
  let broker: Broker | undefined
  try {
    await node.waitForLog('listening', readyTimeoutMs)
    const transporter = loopbackTransporter(pkg, {
      port: clientPort,
      urls: [`${LOOPBACK}:${nodePort}/${NODE_ID}`, `${LOOPBACK}:${clientPort}/${CLIENT_ID}`],
    })
    broker = new pkg.ServiceBroker({
      nodeID: CLIENT_ID,
      transporter,
      logger: { type: 'Console', options: { level: 'warn', colors: false } },
      metrics: false,
      tracing: false,
      cacher: null,
      requestTimeout: 10_000,
      // The bench process owns its signals; Moleculer would otherwise add SIGINT/SIGTERM/exit hooks.
      skipProcessEventRegistration: true,
    })
    await broker.start()
    assertLoopback(transporter)
    // Discovery is by gossip (every 2 s): the action appears once the node's INFO has arrived.
    await broker.waitForServices('cache', readyTimeoutMs)
    await checkBaseline(broker, pkg)
  } catch (error) {
    await broker?.stop().catch(() => {})
    await stopChild(node)
    throw new Error(
      `Moleculer ${pkg.installed} baseline did not start: ${(error as Error).message}\nnode stderr:\n${node.stderr}`,
    )
  }
  const client = broker
  let closed: Promise<void> | undefined
  return {
    installed: pkg.installed,
    pid: node.pid,
    call: () => client.call('cache.get', { key: 'k' }),
    close: () => {
      closed ??= (async () => {
        try {
          await client.stop()
        } finally {
          await stopChild(node)
        }
      })()
      return closed
    },
  }
}
