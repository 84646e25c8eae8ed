import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CliError } from './cli-error.js'
import { frameworkDependencySpec } from './framework-dependency.js'

export interface UpgradeOptions {
  appRoot: string
  /** As `framework new --framework`: an npm spec or a tarball; default this framework, packed. */
  framework: string | undefined
  install: boolean
  log: (line: string) => void
}

/** `framework upgrade`: replaces the app's vendored framework (and bin/setup.mjs), then npm install. */
export function upgradeFramework(options: UpgradeOptions): string {
  const { appRoot, log } = options
  const path = join(appRoot, 'package.json')
  const pkg = existsSync(path)
    ? (JSON.parse(readFileSync(path, 'utf8')) as { dependencies?: Record<string, string> })
    : undefined
  if (!pkg?.dependencies?.framework) {
    throw new CliError(
      `${appRoot} is not an app that depends on framework (no dependencies.framework in package.json); run this in an app made by framework new`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  const spec = frameworkDependencySpec(appRoot, options.framework, log)
  pkg.dependencies.framework = spec
  writeFileSync(path, `${JSON.stringify(pkg, null, 2)}\n`)
  log(`package.json: framework ${spec}`)
  mkdirSync(join(appRoot, 'bin'), { recursive: true })
  copyFileSync(join(import.meta.dirname, 'setup.mjs'), join(appRoot, 'bin', 'setup.mjs'))
  log('update bin/setup.mjs')
  if (options.install) {
    log('npm install …')
    const result = spawnSync('npm', ['install', '--no-audit', '--no-fund'], {
      cwd: appRoot,
      stdio: ['ignore', 'inherit', 'inherit'],
    })
    if (result.status !== 0) {
      throw new CliError(`npm install failed in ${appRoot}; fix the error above and run it again`)
    }
  }
  return spec
}
