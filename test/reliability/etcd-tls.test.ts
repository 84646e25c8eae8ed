import { execFile } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { makeTestCertificates } from '../support/etcd-certs.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { faultRow } from '../support/fault-summary.js'
import { CLI, REPO_ROOT, type SpawnedInstance } from '../support/instance.js'
import { registered } from '../support/spawned-app.js'
import { waitFor } from '../support/wait.js'

// etcd over TLS with client certificates required (--client-cert-auth --trusted-ca-file): with
// the CA/cert/key variables instances register, resolve and call; with the wrong CA or no client
// certificate they serve, stay unready (/readyz 503) and keep retrying with one line naming the fix.

const pki = makeTestCertificates()
afterAll(() => rmSync(pki.dir, { recursive: true, force: true }))
const run = promisify(execFile)

const cluster = useEtcd('tls', 2, {
  server: {
    tls: {
      certFile: pki.serverCertFile,
      keyFile: pki.serverKeyFile,
      clientCaFile: pki.caFile,
      healthClient: {
        caFile: pki.caFile,
        certFile: pki.clientCertFile,
        keyFile: pki.clientKeyFile,
      },
    },
  },
  probe: {
    credentials: {
      rootCertificate: readFileSync(pki.caFile),
      certChain: readFileSync(pki.clientCertFile),
      privateKey: readFileSync(pki.clientKeyFile),
    },
  },
})

const tlsEnv = {
  ETCD_CA_FILE: pki.caFile,
  ETCD_CERT_FILE: pki.clientCertFile,
  ETCD_KEY_FILE: pki.clientKeyFile,
}

/** The keys of namespace `ns`'s phone book, read with the probe's TLS client. */
const keysOf = (ns: string) => cluster.probe.client.getAll().prefix(`/${ns}/services/`).keys()

async function readyzStatus(instance: SpawnedInstance): Promise<number> {
  const { url } = await instance.listening()
  return (await fetch(`${url}/readyz`)).status
}

/** Waits for `count` refusal lines (each one retry), then checks the instance is still unready. */
async function refusedAndRetrying(instance: SpawnedInstance, text: string, count: number) {
  const waitedMs = await waitFor(
    `${count} '${text}' lines`,
    () => instance.count(text) >= count,
    30_000,
    50,
  )
  return { waitedMs, status: await readyzStatus(instance), lines: instance.count(text) }
}

describe('etcd over TLS with client certificates', () => {
  it('with the CA, cert and key: instances register, resolve and call; the CLI reads with flags', async () => {
    const ns = cluster.namespace()
    const cache = cluster.spawn('cache', ns, { env: tlsEnv })
    await registered(cache, ns)
    const api = cluster.spawn('api', ns, { env: tlsEnv })
    await registered(api, ns, 'api')
    expect(await keysOf(ns)).toHaveLength(2)
    expect(await readyzStatus(api)).toBe(200)
    const flags = [
      '--etcd',
      cluster.etcd.endpoint,
      '--namespace',
      ns,
      '--etcd-ca',
      pki.caFile,
      '--etcd-cert',
      pki.clientCertFile,
      '--etcd-key',
      pki.clientKeyFile,
    ]
    // api resolves cache through the TLS etcd; the CLI lists api through etcd's JSON gateway.
    const put = await run(
      process.execPath,
      [CLI, 'call', 'api.put', '{"key":"k","value":"v"}', ...flags],
      { cwd: REPO_ROOT },
    )
    expect(JSON.parse(put.stdout)).toMatchObject({ ok: true })
    const get = await run(process.execPath, [CLI, 'call', 'api.get', '{"key":"k"}', ...flags], {
      cwd: REPO_ROOT,
    })
    expect(JSON.parse(get.stdout)).toMatchObject({ value: 'v', hit: true })
    const ps = await run(process.execPath, [CLI, 'ps', '--json', ...flags], { cwd: REPO_ROOT })
    const roles = (JSON.parse(ps.stdout) as { instances: { role: string }[] }).instances
      .map((row) => row.role)
      .sort()
    expect(roles).toEqual(['api', 'cache'])
  })

  it('a wrong CA: one line naming ETCD_CA_FILE, /readyz 503, retried', async () => {
    const row = faultRow('etcd TLS: instance trusts the wrong CA')
    const ns = cluster.namespace()
    const cache = cluster.spawn('cache', ns, { env: { ...tlsEnv, ETCD_CA_FILE: pki.otherCaFile } })
    const seen = await refusedAndRetrying(cache, 'failed the TLS check', 3)
    const line = cache.lines.find((l) => l.msg.includes('failed the TLS check'))!
    row.measured({
      instances: 1,
      lost: 1,
      note: `${seen.lines} refusal lines in ${seen.waitedMs} ms, /readyz ${seen.status}, never registered`,
    })
    expect(line.msg).toMatch(/point ETCD_CA_FILE at the CA that signed etcd's certificate/)
    expect(line.msg.split('\n')).toHaveLength(1)
    expect(seen.status).toBe(503)
    expect(await keysOf(ns)).toEqual([])
    expect(cache.count('registered in etcd')).toBe(0)
    row.passed()
  })

  it('no client certificate: one line naming ETCD_CERT_FILE/ETCD_KEY_FILE, /readyz 503, retried', async () => {
    const row = faultRow('etcd TLS: no client certificate (--client-cert-auth)')
    const ns = cluster.namespace()
    const cache = cluster.spawn('cache', ns, { env: { ETCD_CA_FILE: pki.caFile } })
    const seen = await refusedAndRetrying(cache, 'requires a client certificate', 3)
    const line = cache.lines.find((l) => l.msg.includes('requires a client certificate'))!
    row.measured({
      instances: 1,
      lost: 1,
      note: `${seen.lines} refusal lines in ${seen.waitedMs} ms, /readyz ${seen.status}, never registered`,
    })
    expect(line.msg).toMatch(/set ETCD_CERT_FILE and ETCD_KEY_FILE/)
    expect(seen.status).toBe(503)
    expect(await keysOf(ns)).toEqual([])
    row.passed()
  })

  it('the CLI with no client certificate: exit 2 and the same line', async () => {
    const ns = cluster.namespace()
    const failed = await run(
      process.execPath,
      [CLI, 'ps', '--etcd', cluster.etcd.endpoint, '--namespace', ns, '--etcd-ca', pki.caFile],
      { cwd: REPO_ROOT },
    ).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    )
    expect(failed?.code).toBe(2)
    expect(failed?.stderr.trim().split('\n')).toHaveLength(1)
    expect(failed?.stderr).toMatch(/refused|requires a client certificate/)
  })
})
