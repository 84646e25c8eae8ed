#!/usr/bin/env node
// `npm run setup` (Rails' bin/setup): what this app needs on a fresh machine that has Node and npm.
// Plain JavaScript without dependencies: it runs before `npm install`. It decides everything
// first and stops with one line if etcd can neither be found nor installed here, so nothing is
// left half-installed; then npm install, then etcd the platform's way, each command printed first.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'

const MIN_NODE = [20, 18]
const say = (line) => process.stdout.write(`setup: ${line}\n`)
const fail = (line) => {
  process.stderr.write(`setup: ${line}\n`)
  process.exit(1)
}
const onPath = (binary) =>
  spawnSync('sh', ['-c', 'command -v "$1"', 'sh', binary], { stdio: 'ignore' }).status === 0
const run = (command, args) => {
  say(`$ ${[command, ...args].join(' ')}`)
  const result = spawnSync(command, args, { stdio: 'inherit' })
  if (result.status !== 0) {
    fail(
      `${command} ${args.join(' ')} failed (${result.error?.message ?? `exit ${result.status}`}); fix that and run npm run setup again`,
    )
  }
}

const [major, minor] = process.versions.node.split('.').map(Number)
if (major < MIN_NODE[0] || (major === MIN_NODE[0] && minor < MIN_NODE[1])) {
  fail(
    `Node ${process.versions.node} is too old: install Node >= ${MIN_NODE.join('.')} and run npm run setup again`,
  )
}

/** How etcd gets onto this machine: nothing to do, a package manager command, or Docker. */
function etcdPlan() {
  if (process.env.ETCD_ENDPOINTS)
    return { kind: 'ready', why: `ETCD_ENDPOINTS=${process.env.ETCD_ENDPOINTS}` }
  if (onPath(process.env.ETCD_BIN ?? 'etcd')) return { kind: 'ready', why: 'etcd is on the PATH' }
  const root = process.getuid?.() === 0
  if (process.platform === 'linux' && onPath('apt-get') && (root || onPath('sudo'))) {
    const sudo = root ? [] : ['sudo']
    return {
      kind: 'install',
      steps: [
        [...sudo, 'apt-get', 'update', '-qq'],
        [
          ...sudo,
          'env',
          'DEBIAN_FRONTEND=noninteractive',
          'apt-get',
          'install',
          '-y',
          '-qq',
          'etcd-server',
          'etcd-client',
        ],
      ],
    }
  }
  if (process.platform === 'darwin' && onPath('brew'))
    return { kind: 'install', steps: [['brew', 'install', 'etcd']] }
  if (onPath('docker')) return { kind: 'docker' }
  return { kind: 'missing' }
}

const plan = etcdPlan()
if (plan.kind === 'missing') {
  const how =
    process.platform === 'darwin'
      ? 'brew install etcd'
      : 'as root: apt-get install -y etcd-server etcd-client (Debian/Ubuntu)'
  fail(
    `etcd is missing and cannot be installed here (no root, sudo or brew): install it (${how}), or install Docker and let framework dev run it in a container, or set ETCD_ENDPOINTS to a running etcd; then run npm run setup again`,
  )
}

const cwd = process.cwd()
if (!existsSync(join(cwd, 'package.json')))
  fail(`no package.json in ${cwd}: run npm run setup in the app`)
run('npm', ['install', '--no-audit', '--no-fund'])
if (plan.kind === 'ready') say(`etcd: ${plan.why}`)
if (plan.kind === 'docker')
  say('etcd: not installed; docker is, and framework dev runs etcd in a container')
if (plan.kind === 'install') {
  for (const [command, ...args] of plan.steps) run(command, args)
  say('etcd installed')
}
say('done: npm run dev starts everything, npm test runs the tests')
