import { assertBalancerSpec } from './balancer-spec.js'
import { ServiceDefinitionError } from './service-definition-error.js'

/**
 * Throws a `ServiceDefinitionError` naming the field (`<where>.balancer`, `<where>.maxInflight`)
 * and what it accepts when one dependency's options cannot be used: at load, not at the first call.
 */
export function assertDepOptions(
  options: { balancer?: unknown; maxInflight?: unknown },
  where: string,
): void {
  assertBalancerSpec(options.balancer, `${where}.balancer`)
  const { maxInflight } = options
  if (
    maxInflight !== undefined &&
    (typeof maxInflight !== 'number' || !Number.isSafeInteger(maxInflight) || maxInflight < 1)
  ) {
    throw new ServiceDefinitionError(
      `${where}.maxInflight: invalid ${JSON.stringify(maxInflight) ?? String(maxInflight)}; use a whole number >= 1 (the most calls in flight to it at once), or leave it out for no cap`,
    )
  }
}
