import { createServer } from 'node:net'
import type { Watcher } from 'etcd3'
import { servicesPrefix } from '../../../framework/registry/record.js'
import type { PhoneBookProbe } from '../../support/phone-book.js'

const isFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })

/**
 * etcd's client port and, next to it, its peer port (the host-network plan uses both). Below the
 * kernel's ephemeral range (32768+): etcd starts minutes after the pick, once the images are built,
 * and an outgoing connection must not take the port meanwhile.
 */
export async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    if ((await isFree(port)) && (await isFree(port + 1))) return port
  }
  throw new Error('no two adjacent free ports in 20000-32000 on 127.0.0.1 in 50 tries')
}

/** A free port in the same range, other than `taken` (the gateway's, beside etcd's pair). */
export async function freeLowPort(taken: number[]): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    if (!taken.includes(port) && (await isFree(port))) return port
  }
  throw new Error('no free port in 20000-32000 on 127.0.0.1 in 50 tries')
}

/** When each phone book key was deleted, from an etcd watch on the namespace's prefix. */
export class Deletions {
  readonly at = new Map<string, number>()
  private constructor(private readonly watcher: Watcher) {
    watcher.on('delete', (kv) => this.at.set(kv.key.toString(), Date.now()))
  }

  static async open(probe: PhoneBookProbe): Promise<Deletions> {
    return new Deletions(
      await probe.client.watch().prefix(servicesPrefix(probe.namespace)).create(),
    )
  }

  /** Cancelling needs etcd; once etcd is gone the client's close ends the watch instead. */
  async close(): Promise<void> {
    await Promise.race([
      this.watcher.cancel().catch(() => undefined),
      new Promise((resolve) => setTimeout(resolve, 2_000)),
    ])
  }
}
