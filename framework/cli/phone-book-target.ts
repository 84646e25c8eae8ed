import { readAppInfo } from '../runtime/app.js'
import { ConfigError, NAMESPACE_PATTERN, parseEtcdEndpoints } from '../runtime/config.js'
import { CliError } from './cli-error.js'

/** Which phone book a command reads: etcd endpoints and namespace. */
export interface PhoneBookTarget {
  etcdEndpoints: string[]
  namespace: string
}

/** From `--etcd` / `--namespace`, else ETCD_ENDPOINTS / FRAMEWORK_NAMESPACE, else the defaults. */
export function phoneBookTarget(
  options: { etcd?: string; namespace?: string; dir: string },
  env: NodeJS.ProcessEnv,
): PhoneBookTarget {
  try {
    const etcdEndpoints = parseEtcdEndpoints(
      options.etcd || env.ETCD_ENDPOINTS || 'http://127.0.0.1:2379',
    )
    const namespace =
      options.namespace || env.FRAMEWORK_NAMESPACE || readAppInfo(options.dir).namespace
    if (!NAMESPACE_PATTERN.test(namespace)) {
      throw new CliError(
        `namespace '${namespace}' is invalid: use letters, digits, '.', '_', '-' (--namespace or FRAMEWORK_NAMESPACE)`,
        2,
      )
    }
    return { etcdEndpoints, namespace }
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, 2)
    throw err
  }
}

export function etcdUnreachable(target: PhoneBookTarget, err: unknown): CliError {
  const message = err instanceof Error ? err.message : String(err)
  const code = /\b(ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND)\b/.exec(message)?.[1]
  const reason = code ?? message.split('\n')[0]
  return new CliError(
    `cannot reach etcd at ${target.etcdEndpoints.join(',')} (${reason}); is it running? start everything with framework dev, or point ETCD_ENDPOINTS (or --etcd) at your etcd`,
  )
}
