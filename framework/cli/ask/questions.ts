import { cancel, confirm, isCancel, multiselect, select, text } from '@clack/prompts'
import { CliError } from '../cli-error.js'

/** One question's wording and the flag that answers it without a terminal. */
interface Question {
  /** The flag (or argument) that answers it: named when there is no terminal to ask on. */
  flag: string
  message: string
  /** How to pass it, for the error: `framework new shop`. */
  example: string
}

export interface Choice<T extends string> {
  value: T
  label?: string
  hint?: string
}

/**
 * Asks what a command was not told: on a terminal with @clack/prompts, else (CI, pipes) an error
 * naming the flag that answers it, so a missing answer never hangs. Ctrl-C at a prompt ends the
 * command before anything is written: every command asks all its questions first.
 */
export class Questions {
  constructor(
    /** True when stdin and stdout are terminals: prompts can be shown and answered. */
    readonly interactive: boolean,
    /** The command, for the error: `framework generate service`. */
    private readonly command: string,
  ) {}

  static forTerminal(command: string): Questions {
    return new Questions(process.stdin.isTTY === true && process.stdout.isTTY === true, command)
  }

  /** A line of text, re-asked with the rule shown until `validate` returns no problem. */
  async text(
    question: Question & {
      placeholder?: string
      initialValue?: string
      validate: (value: string) => string | undefined
    },
  ): Promise<string> {
    this.#needTerminal(question)
    return this.#answered(
      await text({
        message: question.message,
        ...(question.placeholder === undefined ? {} : { placeholder: question.placeholder }),
        ...(question.initialValue === undefined ? {} : { initialValue: question.initialValue }),
        validate: (value) => question.validate((value ?? '').trim()),
      }),
    ).trim()
  }

  async select<T extends string>(
    question: Question & { options: Choice<T>[]; initialValue?: T },
  ): Promise<T> {
    this.#needTerminal(question)
    const options = question.options.map((option) => ({
      value: option.value,
      label: option.label ?? option.value,
      ...(option.hint === undefined ? {} : { hint: option.hint }),
    }))
    // clack's Option type is conditional on the value type; the mapped options fit it.
    return this.#answered(
      await select<T>({
        message: question.message,
        options: options as never,
        ...(question.initialValue === undefined ? {} : { initialValue: question.initialValue }),
      }),
    )
  }

  /** Several of `options` (space toggles, enter submits); none is a valid answer. */
  async multiselect<T extends string>(question: Question & { options: Choice<T>[] }): Promise<T[]> {
    this.#needTerminal(question)
    if (question.options.length === 0) return []
    const options = question.options.map((option) => ({
      value: option.value,
      label: option.label ?? option.value,
      ...(option.hint === undefined ? {} : { hint: option.hint }),
    }))
    return this.#answered(
      await multiselect<T>({
        message: question.message,
        options: options as never,
        required: false,
      }),
    )
  }

  async confirm(question: Question & { initialValue: boolean }): Promise<boolean> {
    this.#needTerminal(question)
    return this.#answered(
      await confirm({ message: question.message, initialValue: question.initialValue }),
    )
  }

  #needTerminal(question: Question): void {
    if (this.interactive) return
    throw new CliError(
      `${this.command}: missing ${question.flag} and no terminal to ask on; pass it, e.g. ${question.example}`,
      'FRAMEWORK_ERR_USAGE',
    )
  }

  #answered<T>(answer: T): Exclude<T, symbol> {
    if (isCancel(answer)) {
      cancel('cancelled: nothing was written')
      throw new CliError(`${this.command} cancelled at a prompt; nothing was written`)
    }
    return answer as Exclude<T, symbol>
  }
}
