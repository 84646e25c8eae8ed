import { type PhoneBookConfig, resolvePhoneBook } from '../config/phone-book.js'
import { CliError } from './cli-error.js'

/** Which phone book a command reads: etcd endpoints and namespace. */
export type PhoneBookTarget = PhoneBookConfig

/** From `--etcd` / `--namespace`, else ETCD_ENDPOINTS / FRAMEWORK_NAMESPACE, else the defaults. */
export function phoneBookTarget(
  options: { etcd?: string; namespace?: string; dir: string },
  env: NodeJS.ProcessEnv,
): PhoneBookTarget {
  return resolvePhoneBook(env, {
    etcd: options.etcd,
    namespace: options.namespace,
    appRoot: options.dir,
  })
}

export function etcdUnreachable(target: PhoneBookTarget, err: unknown): CliError {
  const message = err instanceof Error ? err.message : String(err)
  const code = /\b(ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND)\b/.exec(message)?.[1]
  const reason = code ?? message.split('\n')[0]
  return new CliError(
    `cannot reach etcd at ${target.etcdEndpoints.join(',')} (${reason}); is it running? start everything with framework dev, or point ETCD_ENDPOINTS (or --etcd) at your etcd`,
    'FRAMEWORK_ERR_ETCD_UNREACHABLE',
    { cause: err },
  )
}
