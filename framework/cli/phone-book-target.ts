import type { EtcdAccessChoice } from '../config/etcd-access.js'
import { type PhoneBookConfig, resolvePhoneBook } from '../config/phone-book.js'
import { explainEtcdRefusal } from '../registry/etcd-access-error.js'
import { CliError } from './cli-error.js'

/** Which phone book a command reads: etcd endpoints and namespace. */
export type PhoneBookTarget = PhoneBookConfig

/** The etcd access flags every command that takes `--etcd` has (see main.ts). */
export interface EtcdAccessFlags {
  etcdCa?: string
  etcdCert?: string
  etcdKey?: string
  etcdUser?: string
  etcdPasswordFile?: string
}

/** The flags as a choice that wins over ETCD_CA_FILE, ETCD_USERNAME, ... */
export function etcdAccessChoice(flags: EtcdAccessFlags): EtcdAccessChoice {
  return {
    caFile: flags.etcdCa,
    certFile: flags.etcdCert,
    keyFile: flags.etcdKey,
    username: flags.etcdUser,
    passwordFile: flags.etcdPasswordFile,
  }
}

/** From `--etcd` / `--namespace`, else ETCD_ENDPOINTS / FRAMEWORK_NAMESPACE, else the defaults. */
export function phoneBookTarget(
  options: { etcd?: string; namespace?: string; dir: string } & EtcdAccessFlags,
  env: NodeJS.ProcessEnv,
): PhoneBookTarget {
  return resolvePhoneBook(env, {
    etcd: options.etcd,
    namespace: options.namespace,
    appRoot: options.dir,
    access: etcdAccessChoice(options),
  })
}

export function etcdUnreachable(target: PhoneBookTarget, err: unknown, action?: string): CliError {
  const refusal = explainEtcdRefusal(err, target.etcdEndpoints, target.etcdAccess, action)
  if (refusal) return new CliError(refusal.line, 'FRAMEWORK_ERR_ETCD_REFUSED', { cause: err })
  const message = err instanceof Error ? err.message : String(err)
  const code = /\b(ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND)\b/.exec(message)?.[1]
  const reason = code ?? message.split('\n')[0]
  return new CliError(
    `cannot reach etcd at ${target.etcdEndpoints.join(',')} (${reason}); is it running? start everything with framework dev, or point ETCD_ENDPOINTS (or --etcd) at your etcd`,
    'FRAMEWORK_ERR_ETCD_UNREACHABLE',
    { cause: err },
  )
}
