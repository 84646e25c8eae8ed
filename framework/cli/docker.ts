import { spawnSync } from 'node:child_process'

const PROBE_TIMEOUT_MS = 5_000

/** True if a Docker engine answers (`docker info`). */
export function dockerEngineAnswers(): boolean {
  const result = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], {
    timeout: PROBE_TIMEOUT_MS,
    stdio: 'ignore',
  })
  return result.status === 0
}

/** The compose command: `docker compose` (v2) if present, else `docker-compose` (v1), else undefined. */
export function composeCommand(): string[] | undefined {
  const v2 = spawnSync('docker', ['compose', 'version'], {
    timeout: PROBE_TIMEOUT_MS,
    stdio: 'ignore',
  })
  if (v2.status === 0) return ['docker', 'compose']
  const v1 = spawnSync('docker-compose', ['version'], {
    timeout: PROBE_TIMEOUT_MS,
    stdio: 'ignore',
  })
  if (v1.status === 0) return ['docker-compose']
  return undefined
}
