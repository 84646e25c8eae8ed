import type { RoleManifest } from './build/manifest.js'
import { CliError } from './cli-error.js'
import { FRAMEWORK_ROOT } from './framework-package.js'

/** The gateway's name beside the roles: its compose service, its Kubernetes objects, dev's output. */
export const GATEWAY_NAME = 'gateway'

/** The gateway in a deploy plan (compose, k8s): in front of the roles that expose procedures. */
export interface GatewayPlan {
  /** The roles that expose procedures, sorted. */
  exposing: string[]
  /** The role whose image the gateway runs: every image holds every bundle (and gateway.ts's). */
  imageRole: string
}

/**
 * The gateway of an app as built, or undefined when no role exposes procedures. A role named
 * like the gateway would share its compose service and Kubernetes names: refused.
 */
export function gatewayPlan(roles: readonly RoleManifest[]): GatewayPlan | undefined {
  const exposing = roles
    .filter((role) => role.expose.length > 0)
    .map(({ role }) => role)
    .sort()
  if (exposing.length === 0) return undefined
  if (roles.some(({ role }) => role === GATEWAY_NAME)) {
    throw new CliError(
      `a service is named '${GATEWAY_NAME}', the name of the edge that fronts ${exposing.join(', ')}: rename services/${GATEWAY_NAME} (and its role)`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  return { exposing, imageRole: exposing[0]! }
}

/**
 * The framework CLI inside a runtime image: this repo is its own app (its build compiles the CLI
 * to dist/); other apps depend on the package.
 */
export function imageFrameworkBin(appRoot: string): string {
  return FRAMEWORK_ROOT === appRoot ? 'dist/cli/bin.js' : 'node_modules/framework/dist/cli/bin.js'
}

/** The gateway's command in an image: node as PID 1 (it gets SIGTERM and drains), the bundles. */
export function gatewayCommand(appRoot: string): string[] {
  return ['node', imageFrameworkBin(appRoot), 'gateway', '--built']
}
