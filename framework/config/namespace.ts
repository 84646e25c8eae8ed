import { ConfigError } from './config-error.js'

/** A namespace is the first segment of every phone book key: safe in etcd keys and image names. */
export const NAMESPACE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

/** Returns `namespace` if it is valid; else the one error naming FRAMEWORK_NAMESPACE. */
export function checkNamespace(namespace: string): string {
  if (!NAMESPACE_PATTERN.test(namespace)) {
    throw new ConfigError(
      'FRAMEWORK_NAMESPACE',
      namespace,
      `a name matching ${NAMESPACE_PATTERN} (letters, digits, '.', '_', '-'), e.g. FRAMEWORK_NAMESPACE=shop`,
    )
  }
  return namespace
}
