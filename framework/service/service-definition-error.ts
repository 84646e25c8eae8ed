import { FrameworkError } from '../internal/errors.js'

type ServiceDefinitionErrorCode =
  | 'FRAMEWORK_ERR_BAD_SERVICE'
  | 'FRAMEWORK_ERR_BAD_BALANCER'
  | 'FRAMEWORK_ERR_BAD_EXPOSE'

/** `defineService` was given something it cannot run: thrown at load, so the CLI exits 2. */
export class ServiceDefinitionError extends FrameworkError {
  static override readonly codes: readonly ServiceDefinitionErrorCode[] = [
    'FRAMEWORK_ERR_BAD_SERVICE',
    'FRAMEWORK_ERR_BAD_BALANCER',
    'FRAMEWORK_ERR_BAD_EXPOSE',
  ]

  constructor(message: string, code: ServiceDefinitionErrorCode = 'FRAMEWORK_ERR_BAD_SERVICE') {
    super(code, message)
    this.name = 'ServiceDefinitionError'
  }
}
