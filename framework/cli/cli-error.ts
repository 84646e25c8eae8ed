import { FrameworkError } from '../internal/errors.js'

type CliErrorCode =
  | 'FRAMEWORK_ERR_USAGE'
  | 'FRAMEWORK_ERR_COMMAND_FAILED'
  | 'FRAMEWORK_ERR_ETCD_UNREACHABLE'
  | 'FRAMEWORK_ERR_ETCD_REFUSED'

/** A failure the user can fix: printed as `framework: <message>` on one line; `code` sets the exit code (ERROR_CODES). */
export class CliError extends FrameworkError {
  static override readonly codes: readonly CliErrorCode[] = [
    'FRAMEWORK_ERR_USAGE',
    'FRAMEWORK_ERR_COMMAND_FAILED',
    'FRAMEWORK_ERR_ETCD_UNREACHABLE',
    'FRAMEWORK_ERR_ETCD_REFUSED',
  ]

  constructor(
    message: string,
    code: CliErrorCode = 'FRAMEWORK_ERR_COMMAND_FAILED',
    options?: ErrorOptions,
  ) {
    super(code, message, options)
    this.name = 'CliError'
  }
}
