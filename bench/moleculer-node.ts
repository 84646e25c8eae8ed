/**
 * Moleculer baseline node for call-overhead, in its own process:
 *   node --import tsx bench/moleculer-node.ts --port <p> --client-port <q> [--version 0.14|0.15]
 *     [--node-id id] [--client-id id] [--exit-with-stdin]
 * --version picks the package (moleculer-package.ts; default 0.14); only that one is loaded.
 * Service `cache`, action `get` ({ key: string }, checked by the built-in fastest-validator),
 * answering what the framework's cache.get answers on a hit. TCP transporter on 127.0.0.1 only,
 * no UDP discovery, the client as the one static peer. Prints {"msg":"listening",...} once
 * started; SIGTERM (or stdin closing, with --exit-with-stdin) stops the broker and exits 0.
 */
import { parseArgs } from 'node:util'
import { assertLoopback, LOOPBACK, loopbackTransporter } from './moleculer-loopback.js'
import { loadMoleculer, type MoleculerPackage, parseMoleculerVersion } from './moleculer-package.js'

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    'client-port': { type: 'string' },
    version: { type: 'string', default: '0.14' },
    'node-id': { type: 'string', default: 'moleculer-cache' },
    'client-id': { type: 'string', default: 'moleculer-client' },
    'exit-with-stdin': { type: 'boolean', default: false },
  },
})
const port = Number(values.port)
const clientPort = Number(values['client-port'])
if (!Number.isInteger(port) || port <= 0 || !Number.isInteger(clientPort) || clientPort <= 0) {
  process.stderr.write(
    'usage: moleculer-node.ts --port <port> --client-port <port> [--version 0.14|0.15]\n',
  )
  process.exit(2)
}
const nodeID = values['node-id']
const clientID = values['client-id']
let moleculer: MoleculerPackage
try {
  moleculer = await loadMoleculer(parseMoleculerVersion(values.version, '--version'))
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`)
  process.exit(2)
}

const transporter = loopbackTransporter(moleculer, {
  port,
  urls: [`${LOOPBACK}:${clientPort}/${clientID}`],
})
const broker = new moleculer.ServiceBroker({
  nodeID,
  transporter,
  logger: { type: 'Console', options: { level: 'warn', colors: false } },
  metrics: false,
  tracing: false,
  cacher: null,
  validator: true, // fastest-validator
  // Our own SIGTERM handling below; Moleculer's would call process.exit from its own hooks.
  skipProcessEventRegistration: true,
})

broker.createService({
  name: 'cache',
  actions: {
    get: {
      params: { key: { type: 'string' } },
      handler: () => ({ value: 'v', hit: true, instance: nodeID }),
    },
  },
})

let stopping = false
async function shutdown(code: number): Promise<void> {
  if (stopping) return
  stopping = true
  const force = setTimeout(() => process.exit(1), 5_000)
  force.unref()
  try {
    await broker.stop()
  } finally {
    process.exit(code)
  }
}
process.on('SIGTERM', () => void shutdown(0))
process.on('SIGINT', () => void shutdown(0))
if (values['exit-with-stdin']) {
  // The parent holds our stdin; if it dies without signalling us, stdin ends and we go too.
  process.stdin.on('end', () => void shutdown(0))
  process.stdin.on('error', () => void shutdown(0))
  process.stdin.resume()
}

try {
  await broker.start()
  assertLoopback(transporter)
} catch (error) {
  process.stderr.write(`Moleculer ${moleculer.installed} node: ${(error as Error).message}\n`)
  await shutdown(1)
}
process.stdout.write(
  `${JSON.stringify({ msg: 'listening', moleculer: moleculer.installed, nodeID, instance: nodeID, host: LOOPBACK, port, pid: process.pid })}\n`,
)
