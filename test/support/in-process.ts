import { pino } from 'pino'
import { Dependencies } from '../../framework/client/dependencies.js'
import type { TransportOptions } from '../../framework/client/http-transport.js'
import { createEtcdClient } from '../../framework/registry/etcd-client.js'
import { type RunningInstance, startInstance } from '../../framework/runtime/boot.js'
import { loadConfig } from '../../framework/runtime/config.js'
import type { AnyServiceDefinition } from '../../framework/service/define-service.js'
import { testEnv } from './instance.js'

/** A service instance in this process (silent log), registered in `namespace` on `etcdEndpoint`. */
export function startInProcess(
  definition: AnyServiceDefinition,
  etcdEndpoint: string,
  namespace: string,
  env: Record<string, string> = {},
): Promise<RunningInstance> {
  const config = loadConfig({ ...testEnv(etcdEndpoint, namespace), ...env }, { namespace })
  return startInstance({
    definition,
    config,
    app: { namespace, version: '0.0.0' },
    log: pino({ level: 'silent' }),
  })
}

/**
 * Runs `body` with the clients of `roles` (as a service's ctx.deps has them) on their own etcd
 * client, and closes both afterwards.
 */
export async function withDependencies<T>(
  etcdEndpoint: string,
  namespace: string,
  roles: readonly string[],
  body: (deps: Dependencies) => Promise<T>,
  transport?: TransportOptions,
): Promise<T> {
  const etcd = createEtcdClient([etcdEndpoint])
  const deps = new Dependencies({
    etcd,
    etcdEndpoints: [etcdEndpoint],
    namespace,
    deps: Object.fromEntries(roles.map((role) => [role, {}])),
    log: pino({ level: 'silent' }),
    transport,
  })
  try {
    return await body(deps)
  } finally {
    await deps.close()
    etcd.close()
  }
}
