import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { FrameworkError } from '../internal/errors.js'
import { type AnyServiceDefinition, isServiceDefinition } from '../service/define-service.js'
import { assertRole } from '../service/role.js'

/** A service module could not be found or is not a service definition. */
export class ServiceModuleError extends FrameworkError {
  static override readonly codes = ['FRAMEWORK_ERR_SERVICE_MODULE'] as const

  constructor(message: string) {
    super('FRAMEWORK_ERR_SERVICE_MODULE', message)
    this.name = 'ServiceModuleError'
  }
}

/** `services/<role>/index.ts` under the app root. */
export function serviceModulePath(appRoot: string, role: string): string {
  return join(appRoot, 'services', role, 'index.ts')
}

/**
 * Imports a role's module — `services/<role>/index.ts`, or its bundle at `path` — and checks its
 * default export is `defineService(...)` for that role.
 */
export async function loadServiceDefinition(
  appRoot: string,
  role: string,
  path = serviceModulePath(appRoot, role),
): Promise<AnyServiceDefinition> {
  assertRole(role, 'the command line')
  if (!existsSync(path)) {
    throw new ServiceModuleError(
      `no service '${role}': ${path} does not exist (create it with: framework generate service ${role})`,
    )
  }
  let module: { default?: unknown }
  try {
    module = (await import(pathToFileURL(path).href)) as { default?: unknown }
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (code === 'ERR_MODULE_NOT_FOUND') {
      throw new ServiceModuleError(
        `cannot load ${path}: ${(err as Error).message.split('\n')[0]}; run npm install in the app`,
      )
    }
    throw err
  }
  if (!isServiceDefinition(module.default)) {
    throw new ServiceModuleError(
      `${path} must default-export defineService({ role: '${role}', router }) (export default defineService(...))`,
    )
  }
  if (module.default.role !== role) {
    throw new ServiceModuleError(
      `${path} defines role '${module.default.role}' but lives in services/${role}/; rename the folder or the role`,
    )
  }
  return module.default
}
