import { ROLE_PATTERN } from '../../service/role.js'
import { CliError } from '../cli-error.js'
import { ROLE_RULE, type ServicePlan } from '../generate-service.js'
import {
  APP_NAME_PATTERN,
  APP_NAME_RULE,
  DEFAULT_SERVICES,
  DEV_MODES,
  type DevMode,
  unusableAppDir,
} from '../new-app.js'
import type { Questions } from './questions.js'
import { splitRoles } from './service-questions.js'

/** `new`'s flags that prompts can stand in for. */
export interface NewFlags {
  /** `--service <role[=dep,dep]>`, repeated. */
  service: string[]
  dev?: string
}

export interface AppAnswers {
  dir: string
  services: ServicePlan[]
  dev: DevMode
}

const plan = (role: string, deps: string[]): ServicePlan => ({
  role,
  deps,
  balancers: {},
  expose: false,
  port: undefined,
})

/** `--service orders=inventory,hello` → orders, depending on inventory and hello. */
export function parseServiceFlag(text: string): ServicePlan {
  const [role = '', deps = ''] = text.split('=', 2)
  return plan(role.trim(), splitRoles(deps))
}

function devMode(text: string): DevMode {
  if (!(DEV_MODES as readonly string[]).includes(text))
    throw new CliError(
      `--dev ${text} is invalid: use --dev docker (compose when an engine answers, else local processes) or --dev local`,
      'FRAMEWORK_ERR_USAGE',
    )
  return text as DevMode
}

/**
 * Every answer of `framework new`: from the argument and flags, and, on a terminal when no
 * directory was given, from prompts for the app name, its first services and their
 * dependencies, and how `npm run dev` runs it. Nothing is written here.
 */
export async function appAnswers(
  dir: string | undefined,
  flags: NewFlags,
  questions: Questions,
): Promise<AppAnswers> {
  const given = flags.service.length > 0 ? flags.service.map(parseServiceFlag) : undefined
  const dev = flags.dev === undefined ? undefined : devMode(flags.dev)
  if (dir !== undefined) return { dir, services: given ?? DEFAULT_SERVICES, dev: dev ?? 'docker' }
  const name = await questions.text({
    flag: '<dir>',
    example: 'framework new shop',
    message: 'Name of the app? (its directory, package name and phone book namespace)',
    placeholder: 'shop',
    validate: (value) =>
      !APP_NAME_PATTERN.test(value)
        ? `an app name must be ${APP_NAME_RULE}`
        : unusableAppDir(value),
  })
  let services = given
  if (services === undefined) {
    const roles = splitRoles(
      await questions.text({
        flag: '--service <role>',
        example: '--service hello',
        message: 'Its first services? (roles, comma-separated)',
        initialValue: 'hello',
        validate: (value) => {
          const listed = splitRoles(value)
          if (listed.length === 0) return 'name at least one service, e.g. hello'
          const bad = listed.find((role) => !ROLE_PATTERN.test(role))
          if (bad !== undefined) return `'${bad}': a role must be ${ROLE_RULE}`
          return new Set(listed).size === listed.length ? undefined : 'a role is listed twice'
        },
      }),
    )
    services = []
    for (const [i, role] of roles.entries()) {
      const earlier = roles.slice(0, i)
      const deps = await questions.multiselect({
        flag: `--service ${role}=<deps>`,
        example: `--service ${role}=${earlier.join(',')}`,
        message: `Which services does ${role} call? (space selects, enter confirms)`,
        options: earlier.map((value) => ({ value })),
      })
      services.push(plan(role, deps))
    }
  }
  const chosenDev =
    dev ??
    (await questions.select<DevMode>({
      flag: '--dev',
      example: '--dev local',
      message: 'How should npm run dev run it?',
      options: [
        { value: 'docker', hint: 'docker compose when an engine answers, else local processes' },
        { value: 'local', hint: 'local processes and an etcd binary, always' },
      ],
      initialValue: 'docker',
    }))
  return { dir: name, services, dev: chosenDev }
}
