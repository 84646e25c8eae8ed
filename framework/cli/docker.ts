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

/** A container as `docker inspect` describes it: enough to tell whether it is up and healthy. */
export interface ContainerState {
  id: string
  /** Its name, without docker's leading slash. */
  name: string
  /** The compose service it belongs to (label com.docker.compose.service). */
  service: string
  /** created, running, exited, dead, … */
  status: string
  /** Exit code of its last run (0 while it never exited). */
  exitCode: number
  /** How often the engine restarted it (its restart policy after an exit). */
  restartCount: number
  /** starting, healthy, unhealthy; undefined for an image without a HEALTHCHECK. */
  health: string | undefined
}

interface InspectedContainer {
  Id: string
  Name: string
  RestartCount: number
  State: { Status: string; ExitCode: number; Health?: { Status: string } }
  Config: { Labels: Record<string, string> | null }
}

/** `docker inspect` of some containers; one that is gone is left out. */
export function inspectContainers(ids: string[]): ContainerState[] {
  if (ids.length === 0) return []
  const result = spawnSync('docker', ['inspect', ...ids], {
    timeout: PROBE_TIMEOUT_MS * 2,
    encoding: 'utf8',
  })
  // Exit 1 with a partial list when some id is gone.
  const parsed = JSON.parse(result.stdout || '[]') as InspectedContainer[]
  return parsed.map((container) => ({
    id: container.Id,
    name: container.Name.replace(/^\//, ''),
    service: container.Config.Labels?.['com.docker.compose.service'] ?? '',
    status: container.State.Status,
    exitCode: container.State.ExitCode,
    restartCount: container.RestartCount,
    health: container.State.Health?.Status,
  }))
}
