import { FrameworkError } from '../internal/errors.js'

/** A role is a service's name in the phone book: lower-case, DNS-label-like, so it is safe in etcd keys, URLs and compose service names. */
export const ROLE_PATTERN = /^[a-z][a-z0-9-]{0,62}$/

export class InvalidRoleError extends FrameworkError {
  static override readonly codes = ['FRAMEWORK_ERR_BAD_ROLE'] as const

  constructor(role: unknown, where: string) {
    super(
      'FRAMEWORK_ERR_BAD_ROLE',
      `invalid role ${JSON.stringify(role)} in ${where}: a role must match ${ROLE_PATTERN} ` +
        `(start with a-z, then up to 62 of a-z, 0-9 or '-'), e.g. 'cache' or 'order-api'`,
    )
    this.name = 'InvalidRoleError'
  }
}

export function assertRole(role: unknown, where: string): asserts role is string {
  if (typeof role !== 'string' || !ROLE_PATTERN.test(role)) throw new InvalidRoleError(role, where)
}
