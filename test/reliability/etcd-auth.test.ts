import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Etcd3, EtcdPermissionDeniedError } from 'etcd3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { useEtcd } from '../support/etcd-fixture.js'
import { faultRow } from '../support/fault-summary.js'
import { gatewayReady, spawnGateway } from '../support/gateway-process.js'
import { CLI, REPO_ROOT, type SpawnedInstance } from '../support/instance.js'
import { registered } from '../support/spawned-app.js'
import { waitFor } from '../support/wait.js'

// etcd with authentication turned on by `framework etcd setup-auth` (the real CLI): each role
// registers with its own etcd user; a role's credentials cannot write another role's prefix (etcd
// refuses; the service exits 2 with one line); no credentials read and write nothing.

const run = promisify(execFile)
const cluster = useEtcd('auth', 2)
const out = mkdtempSync(join(tmpdir(), 'framework-etcd-users-'))
afterAll(() => rmSync(out, { recursive: true, force: true }))

/** The namespace every test here shares: users and auth are etcd-wide, set up once. */
let ns = ''
let firstRun = ''
let secondRun = ''

const password = (user: string) => readFileSync(join(out, `${user}.password`), 'utf8')
const credentials = (user: string) => ({
  ETCD_USERNAME: user,
  ETCD_PASSWORD_FILE: join(out, `${user}.password`),
})
const cli = (args: string[], env: Record<string, string> = {}) =>
  run(process.execPath, [CLI, ...args, '--etcd', cluster.etcd.endpoint, '--namespace', ns], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
  })
const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (err: { code: number; stderr: string }) => err,
  )

async function readyzStatus(instance: SpawnedInstance): Promise<number> {
  const { url } = await instance.listening()
  return (await fetch(`${url}/readyz`)).status
}

beforeAll(async () => {
  ns = cluster.namespace()
  firstRun = (await cli(['etcd', 'setup-auth', '--out', out])).stdout
  // Idempotent: root's password is read back from <out>/root.password; users are kept.
  secondRun = (await cli(['etcd', 'setup-auth', '--out', out])).stdout
}, 120_000)

describe('etcd auth from framework etcd setup-auth', () => {
  it('writes one 0600 password file per role and the reader; a re-run keeps them', () => {
    for (const user of [`${ns}.api`, `${ns}.cache`, `${ns}.reader`, 'root']) {
      expect(statSync(join(out, `${user}.password`)).mode & 0o777).toBe(0o600)
      expect(password(user).length).toBeGreaterThanOrEqual(24)
    }
    expect(firstRun).toMatch(new RegExp(`created ${ns}.cache \\(writes /${ns}/services/cache/\\)`))
    expect(firstRun).toMatch(/enabled authentication/)
    expect(secondRun).toMatch(new RegExp(`kept    ${ns}.cache`))
    expect(secondRun).not.toMatch(/created|rotated/)
  })

  it('each role registers with its own credentials, calls work, ps works as the reader', async () => {
    const cache = cluster.spawn('cache', ns, { env: credentials(`${ns}.cache`) })
    await registered(cache, ns)
    const api = cluster.spawn('api', ns, { env: credentials(`${ns}.api`) })
    await registered(api, ns, 'api')
    const reader = credentials(`${ns}.reader`)
    const put = await cli(['call', 'api.put', '{"key":"k","value":"v"}'], reader)
    expect(JSON.parse(put.stdout)).toMatchObject({ ok: true })
    const get = await cli(['call', 'api.get', '{"key":"k"}'], reader)
    expect(JSON.parse(get.stdout)).toMatchObject({ value: 'v', hit: true })
    const ps = await cli(['ps', '--json'], reader)
    const rows = (JSON.parse(ps.stdout) as { instances: { role: string; ttlLeft?: number }[] })
      .instances
    expect(rows.map((row) => row.role).sort()).toEqual(['api', 'cache'])
    // The gateway resolves with the read-only user too.
    const gateway = cluster.adopt(spawnGateway({ ...cluster.env(ns), ...reader }))
    const gatewayUrl = (await gateway.waitForLog('listening', 60_000)).url as string
    await gatewayReady(gatewayUrl, 30_000)
    const viaGateway = await fetch(
      `${gatewayUrl}/trpc/api.get?input=${encodeURIComponent('{"key":"k"}')}`,
    )
    expect(viaGateway.status).toBe(200)
    expect(JSON.stringify(await viaGateway.json())).toContain('"value":"v"')
    // Graceful stop revokes the lease with the role's own user (etcd checks write on its keys).
    cache.child.kill('SIGTERM')
    await cache.waitForLog('lease revoked')
    expect(await cache.exited).toBe(0)
  })

  it('etcd restarted (its auth tokens forgotten): instances log in again; watches see changes', async () => {
    const row = faultRow('etcd restart with auth on (tokens forgotten)')
    const first = cluster.spawn('cache', ns, { env: credentials(`${ns}.cache`) })
    await registered(first, ns)
    const api = cluster.spawn('api', ns, { env: credentials(`${ns}.api`) })
    await registered(api, ns, 'api')
    await cluster.etcd.stop()
    const stoppedAt = Date.now()
    await cluster.etcd.start()
    const reader = credentials(`${ns}.reader`)
    // Both records are back (or never left) on live leases, read as the reader.
    const fresh = async () => {
      const ps = await cli(['ps', '--json'], reader)
      const rows = (JSON.parse(ps.stdout) as { instances: { role: string; stale: boolean }[] })
        .instances
      return rows.length === 2 && rows.every((r) => !r.stale)
    }
    await waitFor('both records fresh again', fresh, 60_000, 250)
    const recoverMs = Date.now() - stoppedAt
    // api's watch on cache must work with a new token: replace the cache instance and call.
    const second = cluster.spawn('cache', ns, { env: credentials(`${ns}.cache`) })
    await registered(second, ns)
    first.child.kill('SIGTERM')
    expect(await first.exited).toBe(0)
    const put = await cli(['call', 'api.put', '{"key":"r","value":"1"}'], reader)
    const servedBy = (JSON.parse(put.stdout) as { servedBy: string }).servedBy
    const { id: secondId } = await second.listening()
    row.measured({
      instances: 2,
      lost: 2,
      recovered: 2,
      recoverMs,
      note: `every client logged in again after the restart; api's watch saw the replacement cache`,
    })
    // The watch stream logged in again at once: no watch waited out its timeout on a stale token.
    const stalled = [first, api].flatMap((p) =>
      p.lines.filter((l) => /watch timed out|watch did not connect/.test(JSON.stringify(l))),
    )
    expect(stalled).toEqual([])
    expect(servedBy).toBe(secondId)
    expect(api.count('may not write') + first.count('may not write')).toBe(0)
    row.passed()
  })

  it("cache's credentials cannot put under api: etcd refuses; as api the service exits 2", async () => {
    const row = faultRow("etcd auth: a role's credentials used to register another role")
    const client = new Etcd3({
      hosts: [cluster.etcd.endpoint],
      auth: { username: `${ns}.cache`, password: password(`${ns}.cache`) },
    })
    const direct = await client
      .put(`/${ns}/services/api/impostor`)
      .value('{}')
      .then(
        () => undefined,
        (err: unknown) => err,
      )
    client.close()
    const started = Date.now()
    const impostor = cluster.spawn('api', ns, { env: credentials(`${ns}.cache`) })
    const code = await impostor.exited
    const line = impostor.lines.find((l) => l.msg.includes('may not write'))
    row.measured({
      instances: 1,
      lost: 1,
      note: `direct put refused (${(direct as Error | undefined)?.constructor.name}); the service exited ${code} after ${Date.now() - started} ms`,
    })
    expect(direct).toBeInstanceOf(EtcdPermissionDeniedError)
    expect(code).toBe(2)
    expect(line?.msg).toBe(
      `etcd user ${ns}.cache may not write /${ns}/services/api/: permission denied; give role api its own credentials (framework etcd setup-auth) and set ETCD_USERNAME / ETCD_PASSWORD_FILE to them`,
    )
    expect(impostor.count('registered in etcd')).toBe(0)
    row.passed()
  })

  it('no credentials: the phone book can be neither read nor written; a service retries unready', async () => {
    const row = faultRow('etcd auth: no credentials (auth enabled)')
    const anonymous = new Etcd3({ hosts: [cluster.etcd.endpoint] })
    const read = await anonymous
      .getAll()
      .prefix(`/${ns}/services/`)
      .keys()
      .then(
        () => 'read',
        (err: Error) => err.message,
      )
    const write = await anonymous
      .put(`/${ns}/services/cache/anonymous`)
      .value('{}')
      .then(
        () => 'written',
        (err: Error) => err.message,
      )
    anonymous.close()
    const cache = cluster.spawn('cache', ns)
    const text = 'has authentication enabled and we gave no user'
    const waitedMs = await waitFor('3 refusal lines', () => cache.count(text) >= 3, 30_000, 50)
    const status = await readyzStatus(cache)
    const ps = await failure(cli(['ps']))
    // The gateway, which registers nothing, says the same from its resolvers.
    const gateway = cluster.adopt(spawnGateway(cluster.env(ns)))
    await gateway.waitForLog(text, 60_000)
    const gatewayUrl = (await gateway.waitForLog('listening', 60_000)).url as string
    const gatewayStatus = (await fetch(`${gatewayUrl}/readyz`)).status
    row.measured({
      instances: 1,
      lost: 1,
      note: `read and put refused; ${cache.count(text)} refusal lines in ${waitedMs} ms, /readyz ${status} (gateway ${gatewayStatus}); ps exit ${ps?.code}`,
    })
    expect(read).toMatch(/user name is empty/)
    expect(write).toMatch(/user name is empty/)
    expect(status).toBe(503)
    expect(gatewayStatus).toBe(503)
    expect(ps?.code).toBe(2)
    expect(ps?.stderr).toMatch(/set ETCD_USERNAME and ETCD_PASSWORD_FILE/)
    row.passed()
  })

  it('--rotate: new passwords; the old one no longer logs in, the new one does', async () => {
    const before = password(`${ns}.cache`)
    const rotated = (await cli(['etcd', 'setup-auth', '--out', out, '--rotate'])).stdout
    expect(rotated).toMatch(new RegExp(`rotated ${ns}.cache`))
    const after = password(`${ns}.cache`)
    expect(after).not.toBe(before)
    const login = async (pw: string) => {
      const client = new Etcd3({
        hosts: [cluster.etcd.endpoint],
        auth: { username: `${ns}.cache`, password: pw },
      })
      try {
        return await client
          .getAll()
          .prefix(`/${ns}/services/`)
          .keys()
          .then(() => 'ok')
      } catch (err) {
        return (err as Error).message
      } finally {
        client.close()
      }
    }
    expect(await login(before)).toMatch(/authentication failed/)
    expect(await login(after)).toBe('ok')
  })

  it('a wrong password: one line naming the password setting', async () => {
    const cache = cluster.spawn('cache', ns, {
      env: { ETCD_USERNAME: `${ns}.cache`, ETCD_PASSWORD: 'not-the-password' },
    })
    const line = await cache.waitForLog('wrong password or no such user', 30_000)
    expect(line.msg).toMatch(/check ETCD_USERNAME and ETCD_PASSWORD/)
    expect(await readyzStatus(cache)).toBe(503)
  })
})
