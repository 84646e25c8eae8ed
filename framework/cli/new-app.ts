import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { CliError } from './cli-error.js'
import { frameworkDependencySpec, toolVersions } from './framework-dependency.js'
import { checkServicePlan, renderService, type ServicePlan } from './generate-service.js'
import { runWithProgress } from './progress.js'
import { renderTemplate } from './template.js'

/** An app's name: its package name and default phone book namespace (npm- and etcd-key-safe). */
export const APP_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,127}$/
export const APP_NAME_RULE = `lower-case letters, digits, '.', '_' and '-', starting with a letter or digit (${APP_NAME_PATTERN}); e.g. shop`

/** How `npm run dev` runs the app: docker compose when an engine answers, or always local processes. */
export type DevMode = 'docker' | 'local'
export const DEV_MODES: readonly DevMode[] = ['docker', 'local']

/** The service every app gets when none is named: a sample to replace. */
export const DEFAULT_SERVICES: ServicePlan[] = [
  { role: 'hello', deps: [], balancers: {}, expose: false, port: undefined },
]

export interface NewAppOptions {
  dir: string
  /** Its first services, each depending only on those before it (default: hello). */
  services?: ServicePlan[]
  /** What `npm run dev` runs (default: docker, which falls back to local processes). */
  dev?: DevMode
  /** Skip `npm install` (tests and offline use). */
  install: boolean
  /** `--framework`: an npm spec, or a framework-<version>.tgz to vendor; default this framework, packed into vendor/. */
  framework?: string | undefined
  log: (line: string) => void
  /** Where progress of long steps (npm install) is drawn; a terminal gets a spinner. */
  progressOut?: NodeJS.WriteStream
}

/** The app name of a directory, or the one-line usage error saying the rule. */
export function appNameOf(dir: string): string {
  const name = basename(resolve(dir))
  if (!APP_NAME_PATTERN.test(name))
    throw new CliError(
      `cannot name an app '${name}': an app name must be ${APP_NAME_RULE}`,
      'FRAMEWORK_ERR_USAGE',
    )
  return name
}

/** Why `dir` cannot hold a new app, or undefined when it can (missing or empty). */
export function unusableAppDir(dir: string): string | undefined {
  const path = resolve(dir)
  return existsSync(path) && readdirSync(path).length > 0
    ? `${path} is not empty; pick a new directory (framework new my-app)`
    : undefined
}

/**
 * `framework new <dir>`: an app that runs as created, with its first services. Everything is
 * checked, then written into a hidden folder beside `dir` and renamed into place: a failure or an
 * interrupt leaves no half-made app.
 */
export async function newApp(options: NewAppOptions): Promise<string> {
  const dir = resolve(options.dir)
  const unusable = unusableAppDir(dir)
  if (unusable) throw new CliError(unusable, 'FRAMEWORK_ERR_USAGE')
  const name = appNameOf(dir)
  const services = options.services ?? DEFAULT_SERVICES
  if (services.length === 0)
    throw new CliError('an app needs at least one service: --service hello', 'FRAMEWORK_ERR_USAGE')
  services.forEach((service, i) => {
    if (services.findIndex((other) => other.role === service.role) !== i)
      throw new CliError(`--service ${service.role} is given twice`, 'FRAMEWORK_ERR_USAGE')
    checkServicePlan(
      service,
      services.slice(0, i).map((earlier) => earlier.role),
    )
  })
  const rendered = services.map((service) => [service.role, renderService(service)] as const)

  mkdirSync(dirname(dir), { recursive: true })
  const staging = join(dirname(dir), `.${name}.${process.pid}.partial`)
  rmSync(staging, { recursive: true, force: true })
  try {
    mkdirSync(join(staging, 'services'), { recursive: true })
    mkdirSync(join(staging, 'bin'), { recursive: true })
    const frameworkSpec = frameworkDependencySpec(staging, options.framework, options.log)
    const tools = toolVersions()
    const files: [string, string][] = [
      [
        'package.json',
        renderTemplate('app/package.json.tmpl', {
          name,
          frameworkSpec,
          esbuildVersion: tools.esbuild,
          tsxVersion: tools.tsx,
          devScript: options.dev === 'local' ? 'framework dev --local' : 'framework dev',
        }),
      ],
      ['tsconfig.json', renderTemplate('app/tsconfig.json.tmpl', {})],
      ['README.md', renderTemplate('app/README.md.tmpl', { name })],
      ['.gitignore', renderTemplate('app/gitignore.tmpl', {})],
    ]
    for (const [role, serviceFiles] of rendered) {
      mkdirSync(join(staging, 'services', role))
      for (const [file, text] of serviceFiles) files.push([`services/${role}/${file}`, text])
    }
    for (const [file, text] of files) {
      writeFileSync(join(staging, file), text)
      options.log(`create ${file}`)
    }
    // Rails' bin/setup: installs what the app needs on a fresh machine (npm install, etcd).
    copyFileSync(join(import.meta.dirname, 'setup.mjs'), join(staging, 'bin', 'setup.mjs'))
    options.log('create bin/setup.mjs')
    // rename(2) replaces an empty directory: `framework new .` in an empty folder works too.
    renameSync(staging, dir)
  } finally {
    rmSync(staging, { recursive: true, force: true })
  }
  if (options.install) {
    const ok = await runWithProgress(
      'npm',
      ['install', '--no-audit', '--no-fund'],
      dir,
      'npm install',
      options.progressOut ?? process.stdout,
    )
    if (!ok) {
      throw new CliError(
        `npm install failed in ${dir}; fix the error above and run npm install there`,
      )
    }
  }
  options.log(`done: cd ${options.dir} && ${options.install ? '' : 'npm run setup && '}npm run dev`)
  return dir
}
