import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { composePlan } from '../../framework/cli/compose.js'
import { REPO_ROOT } from '../support/instance.js'

// `framework compose --etcd-auth`: each role's container gets its own etcd user from
// `framework etcd setup-auth` as a compose secret, the gateway the reader's; without the flag the
// file has no secrets at all.

const ns = `compose-auth-${process.pid}`
const dir = join(REPO_ROOT, '.framework/etcd')
const users = ['api', 'cache', 'reader'].map((name) => `${ns}.${name}`)
const previous = process.env.FRAMEWORK_NAMESPACE
process.env.FRAMEWORK_NAMESPACE = ns
afterAll(() => {
  if (previous === undefined) delete process.env.FRAMEWORK_NAMESPACE
  else process.env.FRAMEWORK_NAMESPACE = previous
  for (const user of users) rmSync(join(dir, `${user}.password`), { force: true })
})

const options = {
  appRoot: REPO_ROOT,
  network: 'bridge' as const,
  baseImage: 'node:22-slim',
  etcdImage: 'etcd',
  etcdPort: 2379,
  replicas: {},
  gatewayPort: 8080,
}
const quiet = () => undefined

interface ComposeFile {
  services: Record<string, { environment: Record<string, string>; secrets?: string[] }>
  secrets?: Record<string, { file: string }>
}

describe('framework compose --etcd-auth', () => {
  it('without setup-auth: one line naming the command', async () => {
    await expect(composePlan({ ...options, etcdAuth: true }, quiet)).rejects.toThrow(
      new RegExp(
        `no password for etcd user ${ns}.api .*run framework etcd setup-auth --namespace ${ns}`,
      ),
    )
  })

  it("mounts each role's password as a secret, the reader's for the gateway; none without the flag", async () => {
    mkdirSync(dir, { recursive: true })
    for (const user of users) writeFileSync(join(dir, `${user}.password`), 'pw\n', { mode: 0o600 })
    const file = parse(
      (await composePlan({ ...options, etcdAuth: true }, quiet)).yaml,
    ) as ComposeFile
    for (const [service, user, secret] of [
      ['cache', `${ns}.cache`, 'etcd-cache'],
      ['api', `${ns}.api`, 'etcd-api'],
      ['gateway', `${ns}.reader`, 'etcd-reader'],
    ] as const) {
      expect(file.services[service]?.environment).toMatchObject({
        ETCD_USERNAME: user,
        ETCD_PASSWORD_FILE: `/run/secrets/${secret}`,
      })
      expect(file.services[service]?.secrets).toEqual([secret])
      expect(file.secrets?.[secret]).toEqual({ file: `./.framework/etcd/${user}.password` })
    }
    const plain = parse((await composePlan(options, quiet)).yaml) as ComposeFile
    expect(plain.secrets).toBeUndefined()
    expect(plain.services.cache?.environment.ETCD_USERNAME).toBeUndefined()
  })
})
