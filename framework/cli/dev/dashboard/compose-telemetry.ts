import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stringify } from 'yaml'

/** Where `framework dev` (compose, foreground) writes the services' telemetry environment. */
export const TELEMETRY_OVERRIDE = '.framework/dev-telemetry.yml'

/**
 * A compose override giving every service (and the gateway) the dev collector's environment; the
 * compose command then reads docker-compose.yml and it (`-f … -f …`), so the generated
 * docker-compose.yml stays what `framework compose` writes. Returns the compose command to use.
 *
 * The collector listens on the host's 127.0.0.1: on the host network (what compose runs with here)
 * the containers reach it there. On a bridge network they could not: it would have to listen on
 * an address the bridge reaches (the docker0 gateway, or 0.0.0.0), and each service would need
 * `extra_hosts: ["host.docker.internal:host-gateway"]` and the endpoint
 * `http://host.docker.internal:<port>`; the dashboard's scrapes and calls would go to container
 * addresses, which only a Linux host routes to. So on a bridge no override is written.
 */
export function writeTelemetryOverride(
  appRoot: string,
  compose: string[],
  services: readonly string[],
  env: Record<string, string>,
): string[] {
  const path = join(appRoot, TELEMETRY_OVERRIDE)
  mkdirSync(join(appRoot, '.framework'), { recursive: true })
  const yaml = stringify({
    services: Object.fromEntries(services.map((service) => [service, { environment: env }])),
  })
  writeFileSync(path, `# Written by framework dev for its dashboard; do not edit.\n${yaml}`)
  return [...compose, '-f', 'docker-compose.yml', '-f', TELEMETRY_OVERRIDE]
}
