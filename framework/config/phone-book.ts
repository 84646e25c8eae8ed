import { readAppInfo } from './app.js'
import { type EtcdAccess, type EtcdAccessChoice, resolveEtcdAccess } from './etcd-access.js'
import { DEFAULT_ETCD_ENDPOINTS, parseEtcdEndpoints } from './etcd-endpoints.js'
import { checkNamespace } from './namespace.js'

/** Which phone book to use: etcd endpoints, how to prove who we are to etcd, and namespace. */
export interface PhoneBookConfig {
  etcdEndpoints: string[]
  /** TLS material and etcd user; undefined for a plain etcd. */
  etcdAccess?: EtcdAccess | undefined
  namespace: string
}

/** Explicit choices (a CLI flag, a `connect()` option) that win over the environment. */
export interface PhoneBookChoice {
  /** Comma list of etcd client URLs (`--etcd`). */
  etcd?: string | undefined
  /** `--namespace`. */
  namespace?: string | undefined
  /** App root whose package.json names the default namespace. */
  appRoot: string
  /** `--etcd-ca`, `--etcd-cert`, `--etcd-key`, `--etcd-user`, `--etcd-password-file`. */
  access?: EtcdAccessChoice | undefined
}

/** The chosen endpoints, else ETCD_ENDPOINTS, else the local default; empty counts as unset. */
export function resolveEtcdEndpoints(env: NodeJS.ProcessEnv, chosen?: string): string[] {
  return parseEtcdEndpoints(chosen || env.ETCD_ENDPOINTS || DEFAULT_ETCD_ENDPOINTS)
}

/** The chosen namespace, else FRAMEWORK_NAMESPACE, else `fallback()` (the package name); checked. */
export function resolveNamespace(
  env: NodeJS.ProcessEnv,
  chosen: string | undefined,
  fallback: () => string,
): string {
  return checkNamespace(chosen || env.FRAMEWORK_NAMESPACE || fallback())
}

/** Flags or options first, then the environment, then the defaults. */
export function resolvePhoneBook(env: NodeJS.ProcessEnv, choice: PhoneBookChoice): PhoneBookConfig {
  const etcdEndpoints = resolveEtcdEndpoints(env, choice.etcd)
  return {
    etcdEndpoints,
    etcdAccess: resolveEtcdAccess(env, etcdEndpoints, choice.access),
    namespace: resolveNamespace(env, choice.namespace, () => readAppInfo(choice.appRoot).namespace),
  }
}
