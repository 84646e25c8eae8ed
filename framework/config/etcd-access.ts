import { readFileSync, type Stats, statSync } from 'node:fs'
import { ConfigError } from './config-error.js'

/**
 * How a process proves itself to etcd: TLS material (a CA to trust etcd's certificate, and a
 * client certificate when etcd runs with --client-cert-auth) and an etcd user. Every etcd client
 * the framework opens (registration, resolvers, the CLI, `connect()`, the gateway) takes it.
 */
export interface EtcdAccess {
  /** PEM of the CA etcd's server certificate is checked against (`ETCD_CA_FILE`). */
  ca?: Buffer
  /** Client certificate and its key, both or neither (`ETCD_CERT_FILE`, `ETCD_KEY_FILE`). */
  cert?: Buffer
  key?: Buffer
  /** etcd user and password (`ETCD_USERNAME` with `ETCD_PASSWORD` or `ETCD_PASSWORD_FILE`). */
  username?: string
  password?: string
  /** Which variable (or flag) each piece came from, for errors that name the fix. */
  sources: EtcdAccessSources
}

/** The name under which each setting was given: a variable, or the CLI flag that won over it. */
export interface EtcdAccessSources {
  ca: string
  cert: string
  key: string
  username: string
  password: string
}

/** Explicit choices (CLI flags) that win over the environment; empty counts as unset. */
export interface EtcdAccessChoice {
  caFile?: string | undefined
  certFile?: string | undefined
  keyFile?: string | undefined
  username?: string | undefined
  passwordFile?: string | undefined
}

/** The CLI flag of each setting, so a flag's error names the flag. */
export const ETCD_ACCESS_FLAGS = {
  caFile: '--etcd-ca',
  certFile: '--etcd-cert',
  keyFile: '--etcd-key',
  username: '--etcd-user',
  passwordFile: '--etcd-password-file',
} as const

/**
 * A secret mounted for this process's group by someone else: Kubernetes mounts a Secret into a
 * pod whose `fsGroup` is set as root-owned, mode 0440, group fsGroup — the only way a non-root
 * container can read it. Readable by our own group and nobody else, and not ours to chmod.
 */
function mountedForOurGroup(stat: Stats): boolean {
  const uid = process.getuid?.()
  // Kubernetes adds fsGroup as a supplementary group: any of ours counts, not only the primary.
  const groups = new Set([process.getgid?.(), ...(process.getgroups?.() ?? [])])
  return (
    uid !== undefined && stat.uid !== uid && groups.has(stat.gid) && (stat.mode & 0o077) === 0o040
  )
}

/**
 * Reads a file named by `variable`. `secret` files (keys, passwords) must not be readable by
 * group or others: a key anyone on the host can read is no credential, so it is refused rather
 * than used.
 */
function readSetting(variable: string, path: string, secret: boolean): Buffer {
  let stat: Stats
  let content: Buffer
  try {
    stat = statSync(path)
    content = readFileSync(path)
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    throw new ConfigError(
      variable,
      path,
      `cannot read it (${reason}); point ${variable} at a readable file`,
    )
  }
  const mode = stat.mode
  if (secret && (mode & 0o077) !== 0 && !mountedForOurGroup(stat)) {
    throw new ConfigError(
      variable,
      path,
      `it is readable by others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); chmod 600 ${path}`,
    )
  }
  return content
}

/**
 * The etcd access settings, flags first, then the environment; undefined when none is set (a
 * plain local etcd). Files are read (and checked) now, so a bad one stops the process at start
 * with one line instead of failing every etcd call later.
 */
export function resolveEtcdAccess(
  env: NodeJS.ProcessEnv,
  endpoints: readonly string[],
  choice: EtcdAccessChoice = {},
): EtcdAccess | undefined {
  const pick = (flag: keyof EtcdAccessChoice, variable: string) =>
    choice[flag]
      ? { value: choice[flag], name: ETCD_ACCESS_FLAGS[flag] }
      : { value: env[variable] || undefined, name: variable }
  const ca = pick('caFile', 'ETCD_CA_FILE')
  const cert = pick('certFile', 'ETCD_CERT_FILE')
  const key = pick('keyFile', 'ETCD_KEY_FILE')
  const username = pick('username', 'ETCD_USERNAME')
  const passwordFile = pick('passwordFile', 'ETCD_PASSWORD_FILE')
  // A password file given as a flag wins over a password in the environment.
  const password =
    passwordFile.value || !env.ETCD_PASSWORD
      ? undefined
      : { value: env.ETCD_PASSWORD, name: 'ETCD_PASSWORD' }
  if (!ca.value && !cert.value && !key.value && !username.value && !passwordFile.value && !password)
    return undefined

  const sources: EtcdAccessSources = {
    ca: ca.name,
    cert: cert.name,
    key: key.name,
    username: username.name,
    password: password?.name ?? passwordFile.name,
  }
  const access: EtcdAccess = { sources }
  if (cert.value && !key.value)
    throw new ConfigError(key.name, '', `${cert.name} needs its private key: set ${key.name} too`)
  if (key.value && !cert.value)
    throw new ConfigError(cert.name, '', `${key.name} needs its certificate: set ${cert.name} too`)
  if (ca.value || cert.value) {
    const plain = endpoints.find((endpoint) => endpoint.startsWith('http:'))
    if (plain) {
      throw new ConfigError(
        'ETCD_ENDPOINTS',
        endpoints.join(','),
        `TLS files are set but ${plain} is plain http; use https:// endpoints, e.g. ETCD_ENDPOINTS=https://127.0.0.1:2379`,
      )
    }
  }
  if (ca.value) access.ca = readSetting(ca.name, ca.value, false)
  if (cert.value && key.value) {
    access.cert = readSetting(cert.name, cert.value, false)
    access.key = readSetting(key.name, key.value, true)
  }
  if (passwordFile.value && env.ETCD_PASSWORD && !choice.passwordFile) {
    throw new ConfigError(
      'ETCD_PASSWORD',
      '<hidden>',
      'both ETCD_PASSWORD and ETCD_PASSWORD_FILE are set; keep one (prefer ETCD_PASSWORD_FILE)',
    )
  }
  if (username.value) {
    if (!password && !passwordFile.value) {
      throw new ConfigError(
        username.name,
        username.value,
        `an etcd user needs a password: set ETCD_PASSWORD_FILE (a file with mode 0600) or ETCD_PASSWORD`,
      )
    }
    access.username = username.value
    access.password = password
      ? password.value
      : // One trailing newline is how editors and `echo` end a file; it is not part of the password.
        readSetting(passwordFile.name, passwordFile.value!, true)
          .toString('utf8')
          .replace(/\r?\n$/, '')
    if (access.password === '') {
      throw new ConfigError(
        sources.password,
        password ? '' : passwordFile.value!,
        'the password is empty; write the etcd user password there (framework etcd setup-auth does)',
      )
    }
  } else if (password || passwordFile.value) {
    throw new ConfigError(
      sources.password,
      password ? '<hidden>' : passwordFile.value!,
      `a password without a user: set ETCD_USERNAME (or ${ETCD_ACCESS_FLAGS.username}) too`,
    )
  }
  return access
}
