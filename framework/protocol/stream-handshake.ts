import { TOKEN_HEADER } from './call-token.js'
import { STREAM_PATH } from './paths.js'

/** The version of the RPC stream's frames; a new one is a new `Upgrade` token. */
export const PROTOCOL_VERSION = 1
/** The `Upgrade` token of the RPC stream. */
export const STREAM_PROTOCOL = `framework-rpc/${PROTOCOL_VERSION}`

/**
 * The client's upgrade request, the first bytes on a new connection; `token` (a call token,
 * call-token.ts) is checked by a service that requires one before it answers 101.
 */
export function upgradeRequest(host: string, token?: string): string {
  const auth = token === undefined ? '' : `${TOKEN_HEADER}: ${token}\r\n`
  return `GET ${STREAM_PATH} HTTP/1.1\r\nhost: ${host}\r\nconnection: upgrade\r\nupgrade: ${STREAM_PROTOCOL}\r\n${auth}\r\n`
}

/** Whether a request with an `Upgrade` header asks for the RPC stream. */
export function isStreamUpgrade(url: string | undefined, upgrade: string | undefined): boolean {
  return url === STREAM_PATH && String(upgrade ?? '').toLowerCase() === STREAM_PROTOCOL
}

/** The service's answer when it accepts: frames follow. */
export const UPGRADE_ACCEPTED = `HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: ${STREAM_PROTOCOL}\r\n\r\n`
/** The service's answer while it drains: the client calls another instance. */
export const UPGRADE_DRAINING = 'HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\r\n'

/**
 * The service's answer to an upgrade without a valid call token: 401 with tRPC's UNAUTHORIZED
 * error body (`bodyJson`), then the connection closes.
 */
export function upgradeUnauthorized(bodyJson: string): string {
  return `HTTP/1.1 401 Unauthorized\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(bodyJson)}\r\n\r\n${bodyJson}`
}

/** The service's answer to an upgrade that is not the RPC stream (and not served as HTTP). */
export function upgradeRefused(method: string | undefined): string {
  return (
    'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: text/plain\r\n\r\n' +
    `this service upgrades only ${STREAM_PATH} to ${STREAM_PROTOCOL}; send ${method} requests without an Upgrade header\n`
  )
}

/**
 * The status of an upgrade answer once its headers are complete (`'101'`: frames follow from
 * `length` on; undefined status: not HTTP), or undefined while they are not.
 */
export function parseUpgradeAnswer(
  text: string,
): { status: string | undefined; length: number } | undefined {
  const end = text.indexOf('\r\n\r\n')
  if (end === -1) return undefined
  return { status: /^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1], length: end + 4 }
}
