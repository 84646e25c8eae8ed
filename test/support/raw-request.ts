import { request as rawRequest } from 'node:http'

/** A request exactly as written (fetch would normalise `..` and encoded slashes away). */
export function raw(
  url: string,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    // http.request throws at once on what HTTP cannot carry (a space in the path).
    const req = rawRequest(
      {
        host: hostname,
        port,
        method,
        path,
        headers: body ? { 'content-type': 'application/json', ...headers } : headers,
      },
      (res) => {
        let text = ''
        res.on('data', (chunk: Buffer) => {
          text += chunk.toString()
        })
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }),
        )
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}
