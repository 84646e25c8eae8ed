import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import {
  type Etcd3,
  EtcdRoleExistsError,
  EtcdRoleNotFoundError,
  EtcdUserExistsError,
  EtcdUserNotFoundError,
  Range,
} from 'etcd3'
import type { EtcdAccess } from '../config/etcd-access.js'
import { createEtcdClient } from '../registry/etcd-client.js'
import { servicesPrefix } from '../registry/record.js'
import { CliError } from './cli-error.js'
import { ETCD_CREDENTIALS_DIR, etcdUserOf, passwordFileOf, READER } from './etcd-credentials.js'
import { etcdUnreachable, type PhoneBookTarget } from './phone-book-target.js'
import { listServiceRoles } from './service-roles.js'

export interface SetupAuthOptions {
  appRoot: string
  target: PhoneBookTarget
  /** The root user's password; else `<out>/root.password`, else a new one (auth still off). */
  rootPassword: string | undefined
  /** Where password files go (mode 0600); default `<app>/.framework/etcd`. */
  out: string | undefined
  /** New passwords for every user of the namespace, even those that have one. */
  rotate: boolean
  log: (line: string) => void
}

export interface SetupAuthResult {
  authWasEnabled: boolean
  /** etcd user → its password file. */
  users: Map<string, string>
}

/** Writes a secret atomically with mode 0600 (a rename, so no reader sees half a password). */
function writeSecret(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, text, { mode: 0o600 })
  chmodSync(tmp, 0o600)
  renameSync(tmp, path)
}

const newPassword = () => randomBytes(24).toString('base64url')

async function ignoring<T>(work: Promise<T>, ...kinds: (new (...args: never[]) => Error)[]) {
  try {
    await work
  } catch (err) {
    if (!kinds.some((kind) => err instanceof kind)) throw err
  }
}

/**
 * `framework etcd setup-auth`: per service role under services/, an etcd role and user that may
 * write only its own prefix (`/<ns>/services/<role>/`) and read the namespace's phone book; a
 * read-only user for the CLI and the gateway; `root`; then authentication on. Each password is
 * random and written to `<out>/<user>.password` (0600). Re-running keeps users that have a
 * password file (unless `rotate`) and adds the roles that appeared since.
 */
export async function setupAuth(options: SetupAuthOptions): Promise<SetupAuthResult> {
  const { target, log } = options
  const roles = listServiceRoles(options.appRoot)
  if (roles.length === 0) {
    throw new CliError(
      `no services under ${join(options.appRoot, 'services')}; run this in the app root or pass --dir`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  if (roles.includes(READER)) {
    throw new CliError(
      `a service role named '${READER}' would share its etcd user with the read-only user of the CLI and gateway; rename services/${READER}`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  const out = resolve(options.out ?? join(options.appRoot, ETCD_CREDENTIALS_DIR))
  mkdirSync(out, { recursive: true, mode: 0o700 })
  const rootFile = passwordFileOf(out, 'root')
  const givenRoot =
    options.rootPassword ??
    (existsSync(rootFile) ? readFileSync(rootFile, 'utf8').replace(/\r?\n$/, '') : undefined)
  const tls: EtcdAccess = { ...target.etcdAccess, sources: target.etcdAccess?.sources ?? SOURCES }
  delete tls.username
  delete tls.password

  // Is auth on already? Then only root may do this; else anyone may, and root is made now.
  const plain = createEtcdClient(target.etcdEndpoints, tls)
  let admin: Etcd3 = plain
  let authWasEnabled: boolean
  try {
    await plain.get('/').string()
    authWasEnabled = false
  } catch (err) {
    if (!/user name is empty/.test((err as Error).message)) {
      plain.close()
      throw etcdUnreachable(target, err)
    }
    authWasEnabled = true
  }
  const users = new Map<string, string>()
  try {
    let rootPassword = givenRoot
    if (authWasEnabled) {
      if (rootPassword === undefined) {
        throw new CliError(
          `etcd at ${target.etcdEndpoints.join(',')} has authentication on: give root's password (--etcd-password-file, ETCD_PASSWORD_FILE, or ${rootFile})`,
          'FRAMEWORK_ERR_USAGE',
        )
      }
      admin = createEtcdClient(target.etcdEndpoints, {
        ...tls,
        username: 'root',
        password: rootPassword,
      })
      await admin.get('/').string()
    } else {
      rootPassword ??= newPassword()
      await ignoring(admin.role('root').create(), EtcdRoleExistsError)
      try {
        await admin.user('root').create(rootPassword)
      } catch (err) {
        if (!(err instanceof EtcdUserExistsError)) throw err
        // Auth is off, so root's old password is unknown here: the one we keep becomes it.
        await admin.user('root').setPassword(rootPassword)
      }
      await admin.user('root').addRole('root')
      if (options.rootPassword === undefined) writeSecret(rootFile, rootPassword)
      users.set('root', options.rootPassword === undefined ? rootFile : '(given)')
    }

    const { namespace } = target
    const book = servicesPrefix(namespace)
    const grants: { user: string; readwrite?: string }[] = [
      ...roles.map((role) => ({
        user: etcdUserOf(namespace, role),
        readwrite: `${book}${role}/`,
      })),
      { user: etcdUserOf(namespace, READER) },
    ]
    for (const { user, readwrite } of grants) {
      // One etcd role per user, named like it: what it may do is visible in `etcdctl role get`.
      await ignoring(admin.role(user).create(), EtcdRoleExistsError)
      await admin
        .role(user)
        .grant([
          { permission: 'Read', range: Range.prefix(book) },
          ...(readwrite
            ? [{ permission: 'Readwrite' as const, range: Range.prefix(readwrite) }]
            : []),
        ])
      const file = passwordFileOf(out, user)
      let exists = true
      await admin
        .user(user)
        .roles()
        .catch((err: unknown) => {
          if (!(err instanceof EtcdUserNotFoundError || err instanceof EtcdRoleNotFoundError))
            throw err
          exists = false
        })
      if (exists && existsSync(file) && !options.rotate) {
        log(`kept    ${user} (${readwrite ? `writes ${readwrite}` : 'reads only'}) ${file}`)
      } else {
        const password = newPassword()
        if (exists) await admin.user(user).setPassword(password)
        else await admin.user(user).create(password)
        writeSecret(file, password)
        log(
          `${exists ? 'rotated' : 'created'} ${user} (${readwrite ? `writes ${readwrite}` : 'reads only'}) ${file}`,
        )
      }
      await admin.user(user).addRole(user)
      users.set(user, file)
    }
    if (!authWasEnabled) {
      await admin.auth.authEnable()
      log(`enabled authentication on etcd at ${target.etcdEndpoints.join(',')}; root: ${rootFile}`)
    }
  } catch (err) {
    if (err instanceof CliError) throw err
    throw etcdUnreachable(target, err, 'manage users and roles (it needs root)')
  } finally {
    if (admin !== plain) admin.close()
    plain.close()
  }
  return { authWasEnabled, users }
}

const SOURCES = {
  ca: 'ETCD_CA_FILE',
  cert: 'ETCD_CERT_FILE',
  key: 'ETCD_KEY_FILE',
  username: 'ETCD_USERNAME',
  password: 'ETCD_PASSWORD_FILE',
}
