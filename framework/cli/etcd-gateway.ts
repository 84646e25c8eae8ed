import { request } from 'node:http'
import { request as requestTls } from 'node:https'
import type { EtcdAccess } from '../config/etcd-access.js'

/**
 * etcd's JSON gateway (`POST <etcd>/v3/...`, the same public API as gRPC, documented in
 * docs/registry-protocol.md): what the CLI's one-shots read the phone book through. Loading the
 * gRPC client (etcd3, grpc-js, protobufjs) costs a one-shot more than all its other work.
 */

/** One key as the gateway returns it (bytes base64, int64 as decimal strings; zero fields omitted). */
export interface GatewayKeyValue {
  key: string
  value: string
  lease: string
}

const b64 = (text: string) => Buffer.from(text).toString('base64')
const unb64 = (text: string | undefined) => Buffer.from(text ?? '', 'base64').toString()

/** The key just past every key starting with `prefix` (etcd's range_end for a prefix). */
function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix)
  bytes[bytes.length - 1]! += 1
  return bytes.toString('base64')
}

function post(
  endpoint: string,
  path: string,
  body: unknown,
  deadline: number,
  access: EtcdAccess | undefined,
  token: string | undefined,
): Promise<unknown> {
  const url = new URL(path, endpoint)
  const send = url.protocol === 'https:' ? requestTls : request
  const data = JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(data),
          // etcd's gateway hands this header to its auth layer as the token.
          ...(token ? { authorization: token } : {}),
        },
        timeout: Math.max(1, deadline - Date.now()),
        ...(access?.ca ? { ca: access.ca } : {}),
        ...(access?.cert && access.key ? { cert: access.cert, key: access.key } : {}),
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          text += chunk
        })
        res.on('end', () => {
          if (res.statusCode !== 200) {
            // etcd's own words (`etcdserver: permission denied`) are what errors are explained by.
            let etcdMessage: unknown
            try {
              etcdMessage = (JSON.parse(text) as { message?: unknown }).message
            } catch {}
            return reject(
              new Error(
                `HTTP ${res.statusCode}: ${typeof etcdMessage === 'string' ? etcdMessage : text}`,
              ),
            )
          }
          try {
            resolve(JSON.parse(text))
          } catch (err) {
            reject(err)
          }
        })
      },
    )
    req.on('timeout', () => req.destroy(new Error('no answer in time (ETIMEDOUT)')))
    req.on('error', reject)
    req.end(data)
  })
}

/** A few calls to the gateway of the first endpoint that answers (a cluster: any member). */
export class EtcdGateway {
  #endpoint: string | undefined
  /** etcd's auth token for `access.username`, fetched on the first call to each endpoint. */
  #token: Promise<string> | undefined

  constructor(
    private readonly endpoints: readonly string[],
    private readonly deadline: number,
    private readonly access?: EtcdAccess,
  ) {}

  #tokenFor(endpoint: string): Promise<string> | undefined {
    const { access } = this
    if (!access?.username || access.password === undefined) return undefined
    this.#token ??= post(
      endpoint,
      '/v3/auth/authenticate',
      { name: access.username, password: access.password },
      this.deadline,
      access,
      undefined,
    ).then((answer) => String((answer as { token?: unknown }).token ?? ''))
    return this.#token
  }

  async #call(path: string, body: unknown): Promise<unknown> {
    let lastError: unknown
    for (const endpoint of this.#endpoint ? [this.#endpoint] : this.endpoints) {
      try {
        const token = await this.#tokenFor(endpoint)
        const answer = await post(endpoint, path, body, this.deadline, this.access, token)
        this.#endpoint = endpoint
        return answer
      } catch (err) {
        // A token from a member that then failed is not tried on the next one.
        this.#token = undefined
        lastError = err
      }
    }
    throw lastError
  }

  /** Every key under `prefix`, with its value and lease. */
  async range(prefix: string): Promise<GatewayKeyValue[]> {
    const answer = (await this.#call('/v3/kv/range', {
      key: b64(prefix),
      range_end: prefixEnd(prefix),
    })) as { kvs?: { key?: string; value?: string; lease?: string }[] }
    return (answer.kvs ?? []).map((kv) => ({
      key: unb64(kv.key),
      value: unb64(kv.value),
      lease: kv.lease ?? '0',
    }))
  }

  /** Seconds left on a lease and its granted TTL (TTL -1: expired or unknown). */
  async leaseTimeToLive(lease: string): Promise<{ ttl: number; grantedTtl: number }> {
    const answer = (await this.#call('/v3/lease/timetolive', { ID: lease })) as {
      TTL?: string
      grantedTTL?: string
    }
    return { ttl: Number(answer.TTL ?? -1), grantedTtl: Number(answer.grantedTTL ?? 0) }
  }
}
