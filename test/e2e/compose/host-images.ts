import { spawnSync } from 'node:child_process'
import {
  chmodSync,
  chownSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { runChecked } from './docker-engine.js'

/**
 * Base images built from this machine's own binaries: nothing can be pulled here. Each is a
 * minimal root filesystem (the binaries, the shared libraries `ldd` names, /bin/sh, /tmp) made
 * into an image with `docker import`, tagged by the binaries' versions so a later run reuses it.
 */
export interface HostImages {
  /** node, npm and /bin/sh: what the Dockerfile template needs (`--base-image`). */
  node: string
  /** etcd and etcdctl (`--etcd-image`). */
  etcd: string
}

const which = (binary: string) =>
  realpathSync(runChecked('sh', ['-c', 'command -v "$1"', 'sh', binary]).trim())

const imageExists = (tag: string) =>
  spawnSync('docker', ['image', 'inspect', tag], { stdio: 'ignore', timeout: 30_000 }).status === 0

/** The shared libraries a binary loads (none for a static one). */
function sharedLibraries(binary: string): string[] {
  const result = spawnSync('ldd', [binary], { encoding: 'utf8', timeout: 30_000 })
  if (result.status !== 0) return []
  return [...result.stdout.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)].map((match) => match[1]!)
}

/** Copies `source` to the same path under `root`, following symlinks (libraries are symlinks). */
function place(root: string, source: string, at = source): void {
  mkdirSync(join(root, dirname(at)), { recursive: true })
  copyFileSync(realpathSync(source), join(root, at))
  chmodSync(join(root, at), 0o755)
}

function skeleton(root: string, binaries: string[]): void {
  rmSync(root, { recursive: true, force: true })
  mkdirSync(join(root, 'tmp'), { recursive: true })
  chmodSync(join(root, 'tmp'), 0o1777)
  for (const binary of binaries) {
    place(root, binary)
    for (const library of sharedLibraries(binary)) place(root, library)
  }
}

function importImage(root: string, tag: string, env: Record<string, string>): void {
  const tarball = `${root}.tar`
  runChecked('tar', ['--numeric-owner', '-C', root, '-cf', tarball, '.'], { timeoutMs: 120_000 })
  const changes = Object.entries(env).flatMap(([name, value]) => [
    '--change',
    `ENV ${name}=${value}`,
  ])
  runChecked('docker', ['import', ...changes, tarball, tag], { timeoutMs: 300_000 })
  rmSync(tarball, { force: true })
  rmSync(root, { recursive: true, force: true })
}

/**
 * node + npm + sh + env (npm scripts run package bins through their `#!/usr/bin/env node` line),
 * root and a uid-1000 user (the template runs as 1000), and the host's CA bundle.
 */
function nodeImage(workDir: string, log: (line: string) => void): string {
  const node = realpathSync(process.execPath)
  // npm's bin/npm-cli.js lives two levels under its package root.
  const npmRoot = resolve(dirname(which('npm')), '..')
  const npmVersion = (
    JSON.parse(readFileSync(join(npmRoot, 'package.json'), 'utf8')) as { version: string }
  ).version
  // -r2: the image's recipe (r2 added /usr/bin/env); a new recipe makes a new tag.
  const tag = `framework-host-node:${process.versions.node}-npm${npmVersion}-r2`
  if (imageExists(tag)) return tag
  log(`building ${tag} from ${node} and ${npmRoot}…`)
  const root = join(workDir, 'node-rootfs')
  const shell = realpathSync('/bin/sh')
  const env = which('env')
  skeleton(root, [node, shell, env])
  place(root, shell, '/bin/sh')
  place(root, env, '/usr/bin/env')
  if (node !== '/usr/bin/node') place(root, node, '/usr/bin/node')
  cpSync(npmRoot, join(root, 'usr/lib/node_modules/npm'), {
    recursive: true,
    verbatimSymlinks: true,
  })
  writeFileSync(
    join(root, 'usr/bin/npm'),
    '#!/bin/sh\nexec node /usr/lib/node_modules/npm/bin/npm-cli.js "$@"\n',
    { mode: 0o755 },
  )
  mkdirSync(join(root, 'etc'), { recursive: true })
  writeFileSync(
    join(root, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:node:/home/node:/bin/sh\n',
  )
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnode:x:1000:\n')
  mkdirSync(join(root, 'root'))
  mkdirSync(join(root, 'home/node'), { recursive: true })
  chownSync(join(root, 'home/node'), 1000, 1000)
  const variables: Record<string, string> = {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    // npm ci inside the build reaches the same registry as the host's npm.
    npm_config_registry: runChecked('npm', ['config', 'get', 'registry']).trim(),
    npm_config_update_notifier: 'false',
  }
  const caBundle = process.env.NODE_EXTRA_CA_CERTS || '/etc/ssl/certs/ca-certificates.crt'
  if (existsSync(caBundle)) {
    place(root, caBundle, '/etc/ssl/certs/ca-certificates.crt')
    variables.NODE_EXTRA_CA_CERTS = '/etc/ssl/certs/ca-certificates.crt'
  }
  importImage(root, tag, variables)
  return tag
}

/** etcd + etcdctl (the compose healthcheck runs `etcdctl endpoint health`). */
function etcdImage(workDir: string, log: (line: string) => void): string {
  const etcd = which(process.env.ETCD_BIN ?? 'etcd')
  const etcdctl = which('etcdctl')
  const version = /etcd Version: (\S+)/.exec(runChecked(etcd, ['--version']))?.[1] ?? 'unknown'
  const tag = `framework-host-etcd:${version}`
  if (imageExists(tag)) return tag
  log(`building ${tag} from ${etcd} and ${etcdctl}…`)
  const root = join(workDir, 'etcd-rootfs')
  skeleton(root, [etcd, etcdctl])
  place(root, etcd, '/usr/bin/etcd')
  place(root, etcdctl, '/usr/bin/etcdctl')
  importImage(root, tag, { PATH: '/usr/bin:/bin', ETCDCTL_API: '3' })
  return tag
}

export function hostImages(workDir: string, log: (line: string) => void): HostImages {
  return { node: nodeImage(workDir, log), etcd: etcdImage(workDir, log) }
}
