import type { EtcdAccess } from '../config/etcd-access.js'

/**
 * Why etcd turned a client away, when it is about who the client is (TLS or etcd auth) rather
 * than etcd being down. Kinds:
 * - `server-cert`: etcd's certificate did not verify against the CA we trust;
 * - `client-cert`: etcd refused our client certificate (or we sent none);
 * - `credentials`: wrong user or password, or none while etcd has auth enabled;
 * - `permission`: the user may not do this on this key.
 */
export type EtcdRefusalKind = 'server-cert' | 'client-cert' | 'credentials' | 'permission'

export interface EtcdRefusal {
  kind: EtcdRefusalKind
  /** One line: what happened, the variable to fix and how. */
  line: string
}

const SERVER_CERT =
  /unable to verify the first certificate|self[- ]signed certificate|unable to get local issuer certificate|certificate verify failed|certificate has expired|Hostname\/IP does not match|ERR_TLS_CERT/i
const CLIENT_CERT =
  /alert bad certificate|alert certificate required|alert unknown ca|SSL alert number 4[2-9]|alert handshake failure/i

/** The core of a gRPC message: the etcd text without the status prefix and the resolution note. */
function reasonOf(message: string): string {
  const last = /Last error: (?:Error: )?([^\n]*?)(?:\. Resolution note:|$)/m.exec(message)?.[1]
  const text = (last ?? message.replace(/^\d+ [A-Z_]+: /, '')).split('\n')[0]!.trim()
  return text
    .replace(/^[0-9A-F]+:error:[0-9A-F]+:SSL routines:[^:]*:/, '')
    .replace(/:\.\.\/.*$/, '')
}

/**
 * Explains `err` if etcd refused us for who we are; undefined when it is anything else (etcd
 * down, a timeout), which callers report as before. `action` names what was tried, e.g.
 * "write /shop/services/api/" — it goes into the permission line.
 */
export function explainEtcdRefusal(
  err: unknown,
  endpoints: readonly string[],
  access: EtcdAccess | undefined,
  action = 'use the phone book',
): EtcdRefusal | undefined {
  const message = err instanceof Error ? err.message : String(err)
  const at = `etcd at ${endpoints.join(',')}`
  const sources = access?.sources
  const reason = reasonOf(message)
  if (SERVER_CERT.test(message)) {
    const ca = sources?.ca ?? 'ETCD_CA_FILE'
    return {
      kind: 'server-cert',
      line: `${at} failed the TLS check (${reason}); point ${ca} at the CA that signed etcd's certificate`,
    }
  }
  if (CLIENT_CERT.test(message)) {
    const cert = sources?.cert ?? 'ETCD_CERT_FILE'
    const key = sources?.key ?? 'ETCD_KEY_FILE'
    return {
      kind: 'client-cert',
      line: access?.cert
        ? `${at} refused our client certificate (${reason}); set ${cert} and ${key} to a certificate signed by the CA etcd trusts (--trusted-ca-file)`
        : `${at} requires a client certificate (${reason}); set ${cert} and ${key} to a certificate signed by the CA etcd trusts`,
    }
  }
  if (/authentication failed, invalid user ID or password/.test(message)) {
    const password = sources?.password ?? 'ETCD_PASSWORD_FILE'
    return {
      kind: 'credentials',
      line: `${at} refused etcd user '${access?.username ?? ''}': wrong password or no such user; check ${sources?.username ?? 'ETCD_USERNAME'} and ${password} (framework etcd setup-auth writes them)`,
    }
  }
  if (/user name is empty|authentication is not enabled/.test(message)) {
    return {
      kind: 'credentials',
      line: /not enabled/.test(message)
        ? `${at} has authentication disabled but ${sources?.username ?? 'ETCD_USERNAME'} is set; enable it (framework etcd setup-auth) or unset ${sources?.username ?? 'ETCD_USERNAME'}`
        : `${at} has authentication enabled and we gave no user; set ETCD_USERNAME and ETCD_PASSWORD_FILE (framework etcd setup-auth writes them)`,
    }
  }
  if (/permission denied/.test(message)) {
    const user = access?.username ? `etcd user '${access.username}'` : 'this etcd client'
    return {
      kind: 'permission',
      line: `${user} may not ${action} (${reason}); use credentials of a user granted it (framework etcd setup-auth)`,
    }
  }
  return undefined
}
