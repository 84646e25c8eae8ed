import { CliError } from './cli-error.js'

/** Parses `--replicas cache=3,api=2` (or repeated flags). */
export function parseReplicas(values: string[]): Record<string, number> {
  const replicas: Record<string, number> = {}
  for (const item of values.flatMap((value) => value.split(','))) {
    const match = /^([a-z][a-z0-9-]{0,62})=(\d{1,3})$/.exec(item.trim())
    if (!match || Number(match[2]) < 1) {
      throw new CliError(
        `--replicas ${JSON.stringify(item)} is invalid: use role=N with N >= 1, e.g. --replicas cache=3`,
        'FRAMEWORK_ERR_USAGE',
      )
    }
    replicas[match[1]!] = Number(match[2])
  }
  return replicas
}

/** `--replicas` may only name roles that exist under services/. */
export function checkReplicaRoles(overrides: Record<string, number>, roles: string[]): void {
  for (const role of Object.keys(overrides)) {
    if (!roles.includes(role)) {
      throw new CliError(
        `--replicas names '${role}', which is not in services/ (${roles.join(', ')})`,
        'FRAMEWORK_ERR_USAGE',
      )
    }
  }
}
