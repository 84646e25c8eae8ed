/**
 * Moleculer 0.14 baseline for call-overhead: spawns bench/moleculer-node.ts (service `cache`)
 * and calls it from a broker in this process over Moleculer's TCP transporter, 127.0.0.1 only,
 * no UDP discovery, each side given the other as a static peer.
 */
import { spawn } from 'node:child_process'
import { ServiceBroker } from 'moleculer'
import { freePort } from '../framework/cli/free-port.js'
import { LoggingChild } from './instance.js'
import { LOOPBACK, LoopbackTcpTransporter } from './moleculer-loopback.js'

const NODE_ID = 'moleculer-cache'
const CLIENT_ID = 'moleculer-client'

export interface MoleculerBaseline {
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

export async function startMoleculer(
  options: {
    readyTimeoutMs?: number
    /** How node runs the service node (default through tsx; footprint runs it compiled). */
    script?: string[]
  } = {},
): Promise<MoleculerBaseline> {
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000
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
        '--exit-with-stdin',
      ],
      { cwd: `${import.meta.dirname}/..`, stdio: ['pipe', 'pipe', 'pipe'] },
    ),
  )
  let broker: ServiceBroker | undefined
  try {
    await node.waitForLog('listening', readyTimeoutMs)
    broker = new ServiceBroker({
      nodeID: CLIENT_ID,
      transporter: new LoopbackTcpTransporter({
        port: clientPort,
        urls: [`${LOOPBACK}:${nodePort}/${NODE_ID}`, `${LOOPBACK}:${clientPort}/${CLIENT_ID}`],
      }),
      logger: { type: 'Console', options: { level: 'warn', colors: false } },
      metrics: false,
      tracing: false,
      cacher: null,
      requestTimeout: 10_000,
      // The bench process owns its signals; Moleculer would otherwise add SIGINT/SIGTERM/exit hooks.
      skipProcessEventRegistration: true,
    })
    await broker.start()
    // Discovery is by gossip (every 2 s): the action appears once the node's INFO has arrived.
    await broker.waitForServices('cache', readyTimeoutMs)
  } catch (error) {
    await broker?.stop().catch(() => {})
    await stopChild(node)
    throw new Error(
      `Moleculer baseline did not start: ${(error as Error).message}\nnode stderr:\n${node.stderr}`,
    )
  }
  const client = broker
  let closed: Promise<void> | undefined
  return {
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
