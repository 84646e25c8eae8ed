import { FrameworkError } from '../internal/errors.js'

/** A bad setting: names the variable, what was given and the accepted form. */
export class ConfigError extends FrameworkError {
  static override readonly codes = ['FRAMEWORK_ERR_BAD_CONFIG'] as const

  constructor(
    readonly variable: string,
    value: string,
    accepted: string,
  ) {
    super(
      'FRAMEWORK_ERR_BAD_CONFIG',
      `${variable}=${JSON.stringify(value)} is invalid: ${accepted}`,
    )
    this.name = 'ConfigError'
  }
}
