import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CliError } from './cli-error.js'

/** Where setup-auth writes credentials, relative to the app root (compose and k8s read them). */
export const ETCD_CREDENTIALS_DIR = '.framework/etcd'

/** The etcd user (and role) of a service role in a namespace: etcd users are cluster-wide. */
export function etcdUserOf(namespace: string, role: string): string {
  return `${namespace}.${role}`
}

/** The read-only user the CLI (ps, watch, call) and the gateway use. */
export const READER = 'reader'

/** The file holding `user`'s password. */
export function passwordFileOf(dir: string, user: string): string {
  return join(dir, `${user}.password`)
}

/** One process's etcd user, as `framework etcd setup-auth` wrote it. */
export interface EtcdCredential {
  user: string
  /** The password file, relative to the app root (compose secrets name it). */
  file: string
  password: string
}

/**
 * The etcd credentials compose and k8s hand to each role's containers, and the reader's for the
 * gateway, from `.framework/etcd/` (written by `framework etcd setup-auth`). A missing file is one
 * line saying which command writes it.
 */
export function etcdCredentials(
  appRoot: string,
  namespace: string,
  roles: readonly string[],
): { roles: Map<string, EtcdCredential>; reader: EtcdCredential } {
  const read = (name: string): EtcdCredential => {
    const user = etcdUserOf(namespace, name)
    const file = passwordFileOf(ETCD_CREDENTIALS_DIR, user)
    if (!existsSync(join(appRoot, file))) {
      throw new CliError(
        `--etcd-auth: no password for etcd user ${user} (${file}); run framework etcd setup-auth --namespace ${namespace} against your etcd first`,
        'FRAMEWORK_ERR_USAGE',
      )
    }
    const password = readFileSync(join(appRoot, file), 'utf8').replace(/\r?\n$/, '')
    return { user, file, password }
  }
  return {
    roles: new Map(roles.map((role) => [role, read(role)])),
    reader: read(READER),
  }
}
