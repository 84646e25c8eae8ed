import type { IOptions } from 'etcd3'
import { afterAll, afterEach, beforeAll } from 'vitest'
import { EtcdServer, type EtcdServerOptions } from '../../framework/cli/local-etcd.js'
import { killAll, type SpawnedInstance, spawnInstance, testEnv } from './instance.js'
import { PhoneBookProbe } from './phone-book.js'

export interface EtcdFixture {
  readonly etcd: EtcdServer
  readonly probe: PhoneBookProbe
  /** A fresh namespace per test: `<prefix>-<n>`. */
  namespace(): string
  /** The environment a spawned instance gets: loopback, this etcd, `namespace`, the fixture's TTL. */
  env(namespace: string): Record<string, string>
  /** Kills `instance` (spawned some other way) after the test, with the fixture's own. */
  adopt(instance: SpawnedInstance): SpawnedInstance
  /** `framework start <role>` against this etcd; killed after each test. */
  spawn(
    role: string,
    namespace: string,
    options?: { env?: Record<string, string>; appRoot?: string },
  ): SpawnedInstance
}

/** An etcd served over TLS (`server.tls`), and the probe's TLS and auth options for it. */
export interface EtcdFixtureOptions {
  server?: EtcdServerOptions
  probe?: Partial<IOptions>
}

/**
 * One real etcd for a test file, a probe client on it, and instances that are killed after each
 * test (etcd is started again if a test stopped it).
 */
export function useEtcd(
  prefix: string,
  ttlSeconds = 2,
  options: EtcdFixtureOptions = {},
): EtcdFixture {
  let etcd: EtcdServer | undefined
  let probe: PhoneBookProbe | undefined
  const running: SpawnedInstance[] = []
  let counter = 0
  beforeAll(async () => {
    etcd = await EtcdServer.start(options.server)
    probe = new PhoneBookProbe(etcd.endpoint, prefix, options.probe)
  })
  afterEach(async () => {
    await killAll(running)
    if (etcd && !etcd.running) await etcd.start()
  })
  afterAll(async () => {
    probe?.close()
    await etcd?.dispose()
  })
  return {
    get etcd() {
      if (!etcd) throw new Error('etcd is started in beforeAll')
      return etcd
    },
    get probe() {
      if (!probe) throw new Error('the probe is made in beforeAll')
      return probe
    },
    namespace: () => `${prefix}-${++counter}`,
    env(namespace) {
      return { ...testEnv(this.etcd.endpoint, namespace), FRAMEWORK_TTL: String(ttlSeconds) }
    },
    adopt(instance) {
      running.push(instance)
      return instance
    },
    spawn(role, namespace, options = {}) {
      const instance = spawnInstance(role, {
        appRoot: options.appRoot,
        env: { ...this.env(namespace), ...options.env },
      })
      running.push(instance)
      return instance
    },
  }
}
