import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'
import { type CollectedSpan, parseOtlpTraces } from './otlp-json.js'
import { TraceStore } from './trace-store.js'

/** Where an OTLP/HTTP exporter posts traces (`<endpoint>/v1/traces`). */
export const OTLP_TRACES_PATH = '/v1/traces'
/** Largest export body taken, after gzip too (the JS exporter's batches are ~100s of KiB). */
export const DEFAULT_MAX_BODY_BYTES = 4 * 2 ** 20
/** A sender that goes on past the limit this many times over is cut off (it will not stop). */
const DRAIN_FACTOR = 4

export interface DevCollectorOptions {
  /** Default 0: a free port, on 127.0.0.1. */
  port?: number
  maxBodyBytes?: number
  /** Traces kept (the oldest go first). */
  maxTraces?: number
}

/** Why a request was refused: its status and a one-line message naming the fix. */
class Refusal {
  constructor(
    readonly status: number,
    readonly message: string,
  ) {}
}

/**
 * The trace collector `framework dev` hosts: an OTLP/HTTP receiver on loopback (JSON encoding,
 * gzip or not: what @opentelemetry/exporter-trace-otlp-http sends) keeping the last traces in a
 * bounded store for the dashboard. A body over the limit gets 413, one that is not an OTLP JSON
 * export 400, protobuf 415; none of them stops it.
 */
export class DevCollector {
  readonly store: TraceStore
  /** Export requests refused (any 4xx), for the tests and the dashboard. */
  refused = 0
  readonly #listeners = new Set<(spans: CollectedSpan[], traceIds: string[]) => void>()

  private constructor(
    private readonly server: Server,
    /** What `OTEL_EXPORTER_OTLP_ENDPOINT` should be (`http://127.0.0.1:<port>`). */
    readonly endpoint: string,
    readonly maxBodyBytes: number,
    maxTraces: number,
  ) {
    this.store = new TraceStore(maxTraces)
  }

  static async start(options: DevCollectorOptions = {}): Promise<DevCollector> {
    const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
    let collector: DevCollector | undefined
    const server = createServer((req, res) => collector?.handle(req, res))
    server.listen(options.port ?? 0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo
    collector = new DevCollector(
      server,
      `http://127.0.0.1:${port}`,
      maxBodyBytes,
      options.maxTraces ?? 200,
    )
    return collector
  }

  /** Called with each accepted export's spans and the traces they touched. */
  onSpans(listener: (spans: CollectedSpan[], traceIds: string[]) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Takes one export body (as posted, maybe gzipped); throws a Refusal when it is not taken. */
  #accept(body: Buffer, encoding: string | undefined): CollectedSpan[] {
    let raw = body
    if (encoding === 'gzip') {
      try {
        raw = gunzipSync(body, { maxOutputLength: this.maxBodyBytes })
      } catch (err) {
        if (err instanceof RangeError) throw this.#tooLarge()
        throw new Refusal(400, `the gzip body does not inflate (${(err as Error).message})`)
      }
    } else if (encoding && encoding !== 'identity') {
      throw new Refusal(415, `content-encoding '${encoding}' is not read here: gzip or none`)
    }
    const parsed = parseOtlpTraces(raw.toString('utf8'))
    if ('error' in parsed) throw new Refusal(400, `malformed OTLP trace export: ${parsed.error}`)
    const traceIds = this.store.add(parsed.spans)
    for (const listener of this.#listeners) listener(parsed.spans, traceIds)
    return parsed.spans
  }

  #tooLarge(): Refusal {
    return new Refusal(
      413,
      `export body over the collector's limit of ${this.maxBodyBytes} bytes: lower OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
    )
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const refuse = (refusal: Refusal) => {
      this.refused++
      if (res.headersSent) return
      res
        .writeHead(refusal.status, { 'content-type': 'application/json' })
        .end(JSON.stringify({ code: refusal.status, message: refusal.message }))
    }
    const path = (req.url ?? '').split('?')[0]
    if (path !== OTLP_TRACES_PATH) {
      req.resume()
      refuse(new Refusal(404, `no such path: the collector takes POST ${OTLP_TRACES_PATH}`))
      return
    }
    if (req.method !== 'POST') {
      req.resume()
      refuse(new Refusal(405, `${req.method} is not taken: POST ${OTLP_TRACES_PATH}`))
      return
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
    if (type === 'application/x-protobuf') {
      req.resume()
      refuse(
        new Refusal(415, 'protobuf is not read here: set OTEL_EXPORTER_OTLP_PROTOCOL=http/json'),
      )
      return
    }
    // Over the limit: answer 413 at once and drain what is still sent (so the sender reads the
    // answer), cutting off one that goes on far past it.
    const chunks: Buffer[] = []
    let size = 0
    let over = Number(req.headers['content-length']) > this.maxBodyBytes
    if (over) refuse(this.#tooLarge())
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (over) {
        if (size > this.maxBodyBytes * DRAIN_FACTOR) req.destroy()
        return
      }
      if (size > this.maxBodyBytes) {
        over = true
        chunks.length = 0
        refuse(this.#tooLarge())
        return
      }
      chunks.push(chunk)
    })
    req.on('error', () => undefined)
    req.on('end', () => {
      if (over) return
      try {
        this.#accept(Buffer.concat(chunks), req.headers['content-encoding']?.toLowerCase())
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
      } catch (err) {
        if (err instanceof Refusal) refuse(err)
        else refuse(new Refusal(500, `collector failed: ${(err as Error).message}`))
      }
    })
  }

  async close(): Promise<void> {
    this.#listeners.clear()
    this.server.closeAllConnections()
    await new Promise((resolve) => this.server.close(resolve))
  }
}
