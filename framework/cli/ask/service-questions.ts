import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { BALANCER_NAMES } from '../../service/balancer-spec.js'
import { ROLE_PATTERN } from '../../service/role.js'
import { CliError } from '../cli-error.js'
import {
  type BalancerChoice,
  FIELD_PATTERN,
  parseBalancerFlag,
  ROLE_RULE,
  type ServicePlan,
} from '../generate-service.js'
import type { Questions } from './questions.js'

/** `generate service`'s flags, as commander gives them. */
export interface GenerateFlags {
  deps?: string
  balancer: string[]
  expose?: boolean
  port?: string
}

const BALANCER_HINTS: Record<(typeof BALANCER_NAMES)[number] | 'hash', string> = {
  p2c: 'the default: two random choices, the less loaded one',
  'round-robin': 'each instance in turn',
  random: 'any instance',
  'least-load': 'fewest calls in flight (heartbeat load)',
  hash: 'same input field → same instance (per-instance state)',
}

export function splitRoles(text: string): string[] {
  return text
    .split(',')
    .map((role) => role.trim())
    .filter(Boolean)
}

/** The one-line problem with a role typed at a prompt, or undefined. */
function roleProblem(role: string, appRoot: string): string | undefined {
  if (!ROLE_PATTERN.test(role)) return `a role must be ${ROLE_RULE}`
  if (existsSync(join(appRoot, 'services', role)))
    return `services/${role} already exists; pick another role`
  return undefined
}

/**
 * Every answer of `framework generate service`: from the argument and flags, and, on a terminal
 * when the role was not given, from prompts for what the flags left out. Nothing is written here.
 */
export async function serviceAnswers(
  role: string | undefined,
  flags: GenerateFlags,
  appRoot: string,
  knownRoles: readonly string[],
  questions: Questions,
): Promise<ServicePlan> {
  const balancers: Record<string, BalancerChoice> = Object.fromEntries(
    flags.balancer.map(parseBalancerFlag),
  )
  const port = flags.port === undefined ? undefined : Number(flags.port)
  if (flags.port !== undefined && !/^\d+$/.test(flags.port)) {
    throw new CliError(
      `--port ${flags.port} is invalid: use a port number 1-65535`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  // A role on the command line means "no questions": what the flags left out takes its default.
  if (role !== undefined) {
    return {
      role,
      deps: splitRoles(flags.deps ?? ''),
      balancers,
      expose: flags.expose === true,
      port,
    }
  }
  const asked = await questions.text({
    flag: '<role>',
    example: 'framework generate service orders',
    message: 'Role of the new service?',
    placeholder: 'orders',
    validate: (value) => roleProblem(value, appRoot),
  })
  const deps =
    flags.deps !== undefined
      ? splitRoles(flags.deps)
      : await questions.multiselect({
          flag: '--deps',
          example: `--deps ${knownRoles[0] ?? 'cache'}`,
          message: `Which services does ${asked} call? (space selects, enter confirms)`,
          options: knownRoles.map((known) => ({ value: known })),
        })
  for (const dep of deps) {
    if (balancers[dep] !== undefined) continue
    const name = await questions.select({
      flag: `--balancer ${dep}=<name>`,
      example: `--balancer ${dep}=p2c`,
      message: `How should calls to ${dep} pick an instance?`,
      options: [...BALANCER_NAMES, 'hash' as const].map((value) => ({
        value,
        hint: BALANCER_HINTS[value],
      })),
      initialValue: 'p2c',
    })
    if (name === 'hash') {
      const field = await questions.text({
        flag: `--balancer ${dep}=hash:<field>`,
        example: `--balancer ${dep}=hash:key`,
        message: `Which input field of calls to ${dep} should pick the instance?`,
        placeholder: 'key',
        validate: (value) =>
          FIELD_PATTERN.test(value) ? undefined : 'an input field name: letters, digits, _ or $',
      })
      balancers[dep] = { hashField: field }
    } else if (name !== 'p2c') {
      balancers[dep] = { name }
    }
  }
  const expose =
    flags.expose ??
    (await questions.confirm({
      flag: '--expose',
      example: '--expose or --no-expose',
      message: `Expose ${asked}'s procedures to outside callers through the gateway?`,
      initialValue: false,
    }))
  return { role: asked, deps, balancers, expose, port }
}
