import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { serviceModulePath } from '../runtime/service-module.js'
import { ROLE_PATTERN } from '../service/role.js'
import { CliError } from './cli-error.js'
import { renderTemplate } from './template.js'

export interface GenerateServiceOptions {
  appRoot: string
  role: string
  deps: string[]
  port: number | undefined
  log: (line: string) => void
}

/** `order-api` → `orderApi`: the identifier a role is imported as. */
function identifier(role: string): string {
  return role.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase())
}

/** A property key for a role: bare when it is an identifier, quoted otherwise. */
function propertyKey(role: string): string {
  return /^[a-z][a-z0-9]*$/.test(role) ? role : `'${role}'`
}

/** `framework generate service <role> [--deps a,b] [--port N]`: the service and its test. */
export function generateService(options: GenerateServiceOptions): string[] {
  const { appRoot, role, deps, port, log } = options
  if (!ROLE_PATTERN.test(role)) {
    throw new CliError(
      `invalid role '${role}': a role must match ${ROLE_PATTERN} (lower-case letters, digits, '-'; e.g. orders or order-api)`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  if (!existsSync(join(appRoot, 'package.json'))) {
    throw new CliError(
      `${appRoot} has no package.json; run this in an app (framework new <dir> makes one)`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  const dir = join(appRoot, 'services', role)
  if (existsSync(dir)) {
    throw new CliError(
      `services/${role} already exists; refusing to overwrite it (pick another role or remove it)`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  for (const dep of deps) {
    if (!ROLE_PATTERN.test(dep))
      throw new CliError(`invalid dependency role '${dep}' in --deps`, 'FRAMEWORK_ERR_USAGE')
    if (dep === role)
      throw new CliError(
        `service '${role}' cannot depend on itself (--deps ${dep})`,
        'FRAMEWORK_ERR_USAGE',
      )
    if (!existsSync(serviceModulePath(appRoot, dep))) {
      throw new CliError(
        `--deps names '${dep}', but services/${dep}/index.ts does not exist; generate it first: framework generate service ${dep}`,
        'FRAMEWORK_ERR_USAGE',
      )
    }
  }
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) {
    throw new CliError(
      `--port ${port} is invalid: use a port number 1-65535`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
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
    optionParts.push(`deps: { ${deps.map((dep) => `${propertyKey(dep)}: true`).join(', ')} }`)
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
  mkdirSync(dir, { recursive: true })
  const written = [
    [
      join(dir, 'index.ts'),
      renderTemplate('service/index.ts.tmpl', {
        imports,
        depsType,
        procedures,
        role,
        options: options_,
      }),
    ],
    [
      join(dir, `${role}.test.ts`),
      renderTemplate('service/service.test.ts.tmpl', { role, testDeps: fakeDeps, extraTests }),
    ],
  ] as const
  for (const [path, text] of written) {
    writeFileSync(path, text)
    log(`create ${path.slice(appRoot.length + 1)}`)
  }
  return written.map(([path]) => path)
}
