import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { CliError } from './cli-error.js'
import { frameworkDependencySpec, toolVersions } from './framework-dependency.js'
import { generateService } from './generate-service.js'
import { renderTemplate } from './template.js'

export interface NewAppOptions {
  dir: string
  /** Skip `npm install` (tests and offline use). */
  install: boolean
  /** `--framework`: an npm spec, or a framework-<version>.tgz to vendor; default this framework, packed into vendor/. */
  framework?: string | undefined
  log: (line: string) => void
}

/** `framework new <dir>`: an app that runs as created, with one example service. */
export function newApp(options: NewAppOptions): string {
  const dir = resolve(options.dir)
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new CliError(
      `${dir} is not empty; pick a new directory (framework new my-app)`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  const name = basename(dir)
    .toLowerCase()
    .replace(/[^a-z0-9._-]/g, '-')
    .replace(/^[._-]+/, '')
  if (name === '')
    throw new CliError(
      `cannot name an app after '${basename(dir)}'; use letters and digits`,
      'FRAMEWORK_ERR_USAGE',
    )
  mkdirSync(join(dir, 'services'), { recursive: true })
  mkdirSync(join(dir, 'bin'), { recursive: true })
  const frameworkSpec = frameworkDependencySpec(dir, options.framework, options.log)
  const tools = toolVersions()
  const files: [string, string][] = [
    [
      'package.json',
      renderTemplate('app/package.json.tmpl', {
        name,
        frameworkSpec,
        esbuildVersion: tools.esbuild,
        tsxVersion: tools.tsx,
      }),
    ],
    ['tsconfig.json', renderTemplate('app/tsconfig.json.tmpl', {})],
    ['README.md', renderTemplate('app/README.md.tmpl', { name })],
    ['.gitignore', renderTemplate('app/gitignore.tmpl', {})],
  ]
  for (const [file, text] of files) {
    writeFileSync(join(dir, file), text)
    options.log(`create ${file}`)
  }
  // Rails' bin/setup: installs what the app needs on a fresh machine (npm install, etcd).
  copyFileSync(join(import.meta.dirname, 'setup.mjs'), join(dir, 'bin', 'setup.mjs'))
  options.log('create bin/setup.mjs')
  generateService({ appRoot: dir, role: 'hello', deps: [], port: undefined, log: options.log })
  if (options.install) {
    options.log('npm install …')
    const result = spawnSync('npm', ['install', '--no-audit', '--no-fund'], {
      cwd: dir,
      stdio: ['ignore', 'inherit', 'inherit'],
    })
    if (result.status !== 0) {
      throw new CliError(
        `npm install failed in ${dir}; fix the error above and run npm install there`,
      )
    }
  }
  options.log(`done: cd ${options.dir} && ${options.install ? '' : 'npm run setup && '}npm run dev`)
  return dir
}
