import { spawn } from 'node:child_process'
import { CLI, REPO_ROOT, SpawnedInstance } from './instance.js'

/**
 * `framework gateway` in front of the example app (or `appRoot`), on a free loopback port;
 * `listening()` gives its URL. `args` may name a settings module (`--config <file>`).
 */
export function spawnGateway(
  env: Record<string, string>,
  options: { appRoot?: string; args?: string[] } = {},
): SpawnedInstance {
  const child = spawn(process.execPath, [CLI, 'gateway', ...(options.args ?? [])], {
    cwd: options.appRoot ?? REPO_ROOT,
    env: { ...process.env, NODE_ENV: 'test', GATEWAY_PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  return new SpawnedInstance(child)
}

/** Resolves once the gateway at `url` answers /readyz with 200 (every exposing role listed). */
export async function gatewayReady(url: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const status = await fetch(`${url}/readyz`).then(
      (response) => response.status,
      () => 0,
    )
    if (status === 200) return
    if (Date.now() > deadline) throw new Error(`gateway at ${url} not ready within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
