import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BALANCER_NAMES, type BalancerName } from '../service/balancer-spec.js'
import { ROLE_PATTERN } from '../service/role.js'
import { CliError } from './cli-error.js'
import { listServiceRoles } from './service-roles.js'
import { renderTemplate } from './template.js'

/** How calls to one dependency pick an instance: a named balancer, or rendezvous hashing on an input field. */
export type BalancerChoice = { name: BalancerName } | { hashField: string }

/** What `generate service` makes: every answer of its prompts (or flags). */
export interface ServicePlan {
  role: string
  deps: string[]
  /** Per dependency; a dependency left out gets the default (p2c). */
  balancers: Record<string, BalancerChoice>
  /** `expose: true`: every procedure reachable through the gateway. */
  expose: boolean
  port: number | undefined
}

export interface GenerateServiceOptions extends ServicePlan {
  appRoot: string
  log: (line: string) => void
}

/** The rule a role must follow, as a prompt or an error shows it. */
export const ROLE_RULE = `lower-case letters, digits and '-', starting with a letter (${ROLE_PATTERN}); e.g. orders or order-api`
/** An input field a `hash` balancer reads: a plain identifier. */
export const FIELD_PATTERN = /^[A-Za-z_$][A-Za-z0-9_$]*$/

/** Parses `--balancer <dep>=<name>` or `<dep>=hash:<field>`. */
export function parseBalancerFlag(text: string): [string, BalancerChoice] {
  const match = /^([^=]+)=(.+)$/.exec(text.trim())
  const dep = match?.[1]?.trim() ?? ''
  const spec = match?.[2]?.trim() ?? ''
  const usage = `use --balancer <dep>=<${BALANCER_NAMES.join('|')}> or <dep>=hash:<input field>, e.g. --balancer cache=hash:key`
  if (!match) throw new CliError(`--balancer ${text} is invalid: ${usage}`, 'FRAMEWORK_ERR_USAGE')
  if (spec.startsWith('hash:')) {
    const field = spec.slice('hash:'.length)
    if (!FIELD_PATTERN.test(field))
      throw new CliError(
        `--balancer ${text}: '${field}' is not an input field name; ${usage}`,
        'FRAMEWORK_ERR_USAGE',
      )
    return [dep, { hashField: field }]
  }
  if (!(BALANCER_NAMES as readonly string[]).includes(spec))
    throw new CliError(
      `--balancer ${text}: unknown balancer '${spec}'; ${usage}`,
      'FRAMEWORK_ERR_USAGE',
    )
  return [dep, { name: spec as BalancerName }]
}

/** `order-api` → `orderApi`: the identifier a role is imported as. */
function identifier(role: string): string {
  return role.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase())
}

/** A property key for a role: bare when it is an identifier, quoted otherwise. */
function propertyKey(role: string): string {
  return /^[a-z][a-z0-9]*$/.test(role) ? role : `'${role}'`
}

/**
 * Throws the one-line usage error for the first thing wrong with `plan`; `knownRoles` are the
 * services its dependencies may name (those under services/, or made before it by `new`).
 */
export function checkServicePlan(plan: ServicePlan, knownRoles: readonly string[]): void {
  const { role, deps, port } = plan
  if (!ROLE_PATTERN.test(role)) {
    throw new CliError(`invalid role '${role}': a role must be ${ROLE_RULE}`, 'FRAMEWORK_ERR_USAGE')
  }
  for (const dep of deps) {
    if (!ROLE_PATTERN.test(dep))
      throw new CliError(`invalid dependency role '${dep}' in --deps`, 'FRAMEWORK_ERR_USAGE')
    if (dep === role)
      throw new CliError(
        `service '${role}' cannot depend on itself (--deps ${dep})`,
        'FRAMEWORK_ERR_USAGE',
      )
    if (!knownRoles.includes(dep)) {
      throw new CliError(
        `--deps names '${dep}', but services/${dep}/index.ts does not exist; generate it first: framework generate service ${dep}`,
        'FRAMEWORK_ERR_USAGE',
      )
    }
  }
  for (const dep of Object.keys(plan.balancers)) {
    if (!deps.includes(dep))
      throw new CliError(
        `--balancer ${dep}=…: '${dep}' is not one of its --deps (${deps.join(',') || 'none'})`,
        'FRAMEWORK_ERR_USAGE',
      )
  }
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) {
    throw new CliError(
      `--port ${port} is invalid: use a port number 1-65535`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
}

/** A dependency's entry in `deps`: `true`, or its balancer. */
function depEntry(choice: BalancerChoice | undefined): string {
  if (choice === undefined) return 'true'
  if ('name' in choice) return `{ balancer: '${choice.name}' }`
  // Read through a record: the field may be missing from some procedures' inputs (then p2c).
  return (
    `{\n      // Calls with the same '${choice.hashField}' go to the same instance (rendezvous hashing); none: p2c.\n` +
    `      balancer: {\n        hash: ({ input }) => {\n` +
    `          const key = (input as unknown as Record<string, unknown> | undefined)?.['${choice.hashField}']\n` +
    `          return typeof key === 'string' || typeof key === 'number' ? String(key) : undefined\n` +
    '        },\n      },\n    }'
  )
}

/** The files of a service (paths relative to services/<role>), rendered from the templates. */
export function renderService(plan: ServicePlan): [string, string][] {
  const { role, deps, port } = plan
  const imports = deps
    .map((dep) => `import type ${identifier(dep)} from '../${dep}/index.js'\n`)
    .join('')
  const depsType = deps.length
    ? `<{ ${deps.map((dep) => `${propertyKey(dep)}: typeof ${identifier(dep)}`).join('; ')} }>`
    : ''
  // A relay procedure per dependency shows a typed call through discovery (generated
  // services all answer `ping`).
  const procedures = deps
    .map(
      (dep) =>
        `  /** Calls ${dep}.ping through discovery: no URL, typed end to end. */\n` +
        `  ${identifier(dep)}Ping: t.procedure\n` +
        '    .input(z.object({ name: z.string().min(1).max(100) }))\n' +
        `    .query(({ input, ctx }) => ctx.deps${/-/.test(dep) ? `['${dep}']` : `.${dep}`}.ping(input)),\n`,
    )
    .join('')
  const optionParts: string[] = []
  if (deps.length)
    optionParts.push(
      `deps: { ${deps.map((dep) => `${propertyKey(dep)}: ${depEntry(plan.balancers[dep])}`).join(', ')} }`,
    )
  if (plan.expose) optionParts.push('expose: true')
  if (port !== undefined) optionParts.push(`port: ${port}`)
  const options_ = optionParts.length ? `, ${optionParts.join(', ')}` : ''
  const fakeDeps = deps.length
    ? `, {\n      // Stand-ins for the dependencies: unit tests need no etcd and no other service.\n      deps: { ${deps
        .map(
          (dep) =>
            `${propertyKey(dep)}: { ping: async () => ({ message: 'hello from ${dep}', instance: '${dep}-fake' }) }`,
        )
        .join(', ')} } as never,\n    }`
    : ''
  const extraTests = deps
    .map(
      (dep) =>
        `\n  it('calls ${dep} through ctx.deps', async () => {\n` +
        `    const caller = createTestCaller(service${fakeDeps})\n` +
        `    expect(await caller.${identifier(dep)}Ping({ name: 'x' })).toEqual({ message: 'hello from ${dep}', instance: '${dep}-fake' })\n` +
        '  })\n',
    )
    .join('')
  return [
    [
      'index.ts',
      renderTemplate('service/index.ts.tmpl', {
        imports,
        depsType,
        procedures,
        role,
        options: options_,
      }),
    ],
    [
      `${role}.test.ts`,
      renderTemplate('service/service.test.ts.tmpl', { role, testDeps: fakeDeps, extraTests }),
    ],
  ]
}

/**
 * Writes `files` as services/<role>/ all at once: into a hidden folder beside it, renamed into
 * place when complete, so an interrupted run leaves no half-written service.
 */
export function writeServiceFolder(
  appRoot: string,
  role: string,
  files: [string, string][],
  log: (line: string) => void,
): string[] {
  const dir = join(appRoot, 'services', role)
  const staging = join(appRoot, 'services', `.${role}.${process.pid}.partial`)
  mkdirSync(staging, { recursive: true })
  try {
    for (const [name, text] of files) writeFileSync(join(staging, name), text)
    renameSync(staging, dir)
  } finally {
    rmSync(staging, { recursive: true, force: true })
  }
  for (const [name] of files) log(`create services/${role}/${name}`)
  return files.map(([name]) => join(dir, name))
}

/** Throws the usage error when `appRoot` is not an app: before any question is asked. */
export function assertAppRoot(appRoot: string): void {
  if (!existsSync(join(appRoot, 'package.json'))) {
    throw new CliError(
      `${appRoot} has no package.json; run this in an app (framework new <dir> makes one)`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
}

/** `framework generate service <role> [--deps a,b] [--balancer dep=name] [--expose] [--port N]`. */
export function generateService(options: GenerateServiceOptions): string[] {
  const { appRoot, role } = options
  assertAppRoot(appRoot)
  checkServicePlan(options, listServiceRoles(appRoot))
  if (existsSync(join(appRoot, 'services', role))) {
    throw new CliError(
      `services/${role} already exists; refusing to overwrite it (pick another role or remove it)`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  return writeServiceFolder(appRoot, role, renderService(options), options.log)
}
