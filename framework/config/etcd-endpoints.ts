import { ConfigError } from './config-error.js'

/** Where etcd is looked for when nothing names it: a local single-node etcd. */
export const DEFAULT_ETCD_ENDPOINTS = 'http://127.0.0.1:2379'

const ACCEPTED =
  'a comma-separated list of etcd client URLs, e.g. ETCD_ENDPOINTS=http://127.0.0.1:2379,http://127.0.0.1:22379'

/** Parses `ETCD_ENDPOINTS`: a comma list of `http(s)://host:port` (a bare `host:port` means http). */
export function parseEtcdEndpoints(raw: string): string[] {
  const endpoints = raw
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
  if (endpoints.length === 0) throw new ConfigError('ETCD_ENDPOINTS', raw, ACCEPTED)
  return endpoints.map((endpoint) => {
    const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `http://${endpoint}`
    let url: URL
    try {
      url = new URL(withScheme)
    } catch {
      throw new ConfigError('ETCD_ENDPOINTS', raw, ACCEPTED)
    }
    if (
      !['http:', 'https:'].includes(url.protocol) ||
      url.hostname === '' ||
      url.port === '' ||
      (url.pathname !== '/' && url.pathname !== '') ||
      url.search ||
      url.username
    ) {
      throw new ConfigError('ETCD_ENDPOINTS', raw, ACCEPTED)
    }
    return `${url.protocol}//${url.host}`
  })
}
