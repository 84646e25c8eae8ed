import { spawnSync } from 'node:child_process'
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { Namespace, Secret, Service } from 'kubernetes-models/v1'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseAllDocuments } from 'yaml'
import { frameworkTarball } from '../support/framework-package.js'
import { CLI, REPO_ROOT } from '../support/instance.js'

// `framework k8s` for the example app and for a generated app: every object validates against
// Kubernetes' own schemas (kubernetes-models, generated from the API's OpenAPI), and the example
// app's manifests are a reviewed snapshot. No cluster runs here (nor `kubectl apply
// --dry-run=client`, which needs an API server for discovery).

interface K8sDoc {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace?: string }
  // biome-ignore lint/suspicious/noExplicitAny: manifests are read as the plain data they are
  spec?: any
}

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  Namespace,
  Secret,
  Service,
  Deployment,
  StatefulSet,
  PodDisruptionBudget,
}

let workdir: string

function cli(args: string[], cwd: string) {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    cwd,
    env: { ...process.env, FRAMEWORK_DRAIN_TIMEOUT_MS: undefined, NO_COLOR: '1' },
    encoding: 'utf8',
    timeout: 120_000,
  })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

const parse = (text: string) => parseAllDocuments(text).map((doc) => doc.toJS() as K8sDoc)

/** Validates each object with the schema of its kind; an unknown kind fails. */
function validateAll(docs: K8sDoc[]): void {
  for (const doc of docs) {
    const Model = MODELS[doc.kind]
    expect(Model, `a model for ${doc.kind}`).toBeDefined()
    expect(
      () => new Model!(doc as never).validate(),
      `${doc.kind} ${doc.metadata.name}`,
    ).not.toThrow()
  }
}

const find = (docs: K8sDoc[], kind: string, name: string) =>
  docs.find((doc) => doc.kind === kind && doc.metadata.name === name)

beforeAll(() => {
  workdir = mkdtempSync(join(tmpdir(), 'framework-k8s-'))
})

afterAll(() => {
  rmSync(workdir, { recursive: true, force: true })
})

describe('framework k8s, example app', () => {
  let docs: K8sDoc[]
  let text: string

  beforeAll(() => {
    const result = cli(['k8s'], REPO_ROOT)
    expect(result.code, result.stderr).toBe(0)
    text = result.stdout
    docs = parse(text)
  })

  it('every object validates against the Kubernetes schemas', () => {
    expect(docs.map((doc) => `${doc.kind}/${doc.metadata.name}`)).toEqual([
      'Namespace/framework',
      'Service/etcd',
      'StatefulSet/etcd',
      'PodDisruptionBudget/etcd',
      'Deployment/api',
      'Deployment/cache',
      'PodDisruptionBudget/cache',
      'Deployment/gateway',
      'PodDisruptionBudget/gateway',
      'Service/gateway',
    ])
    validateAll(docs)
    // The validation can fail: a replicas that is not an integer is refused.
    const broken = structuredClone(find(docs, 'Deployment', 'cache')!)
    broken.spec.replicas = 'three'
    expect(() => new Deployment(broken as never).validate()).toThrow(/replicas/)
  })

  it('matches the reviewed snapshot', async () => {
    await expect(text).toMatchFileSnapshot('__snapshots__/example-app.k8s.yaml')
  })

  it('probes, grace period above the drain, downward-API address, non-root, PDBs, no Service for roles behind the gateway', () => {
    for (const role of ['api', 'cache']) {
      const pod = find(docs, 'Deployment', role)!.spec.template.spec
      const [container] = pod.containers
      expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' })
      // A scraper finds /metrics on the container port (roles and the gateway alike).
      expect(find(docs, 'Deployment', role)!.spec.template.metadata.annotations).toEqual({
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': String(container.ports[0].containerPort),
        'prometheus.io/path': '/metrics',
      })
      expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' })
      // The default drain is 10 s; SIGTERM must get it and the lease revoke before SIGKILL.
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(10)
      expect(container.env).toContainEqual({
        name: 'ADVERTISE_HOST',
        valueFrom: { fieldRef: { fieldPath: 'status.podIP' } },
      })
      expect(container.env).toContainEqual({
        name: 'ETCD_ENDPOINTS',
        value:
          'http://etcd-0.etcd.framework.svc:2379,http://etcd-1.etcd.framework.svc:2379,http://etcd-2.etcd.framework.svc:2379',
      })
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 })
      expect(container.securityContext).toMatchObject({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
      })
      expect(container.resources.requests).toBeDefined()
      expect(container.resources.limits).toBeDefined()
    }
    expect(find(docs, 'Deployment', 'cache')!.spec.replicas).toBe(3)
    expect(find(docs, 'PodDisruptionBudget', 'cache')!.spec.maxUnavailable).toBe(1)
    // One api replica: no PDB (it would block every drain).
    expect(find(docs, 'PodDisruptionBudget', 'api')).toBeUndefined()
    // api is reached from outside through the gateway (it exposes get and put); cache only
    // through the phone book: neither has a Service of its own.
    expect(find(docs, 'Service', 'api')).toBeUndefined()
    expect(find(docs, 'Service', 'cache')).toBeUndefined()
    const etcd = find(docs, 'StatefulSet', 'etcd')!.spec
    expect(etcd.replicas).toBe(3)
    expect(find(docs, 'Service', 'etcd')!.spec.clusterIP).toBe('None')
  })

  it('the gateway: 2 replicas of the exposing role image running framework gateway --built, probes, grace period, non-root, a PDB, the only LoadBalancer', () => {
    const deployment = find(docs, 'Deployment', 'gateway')!.spec
    expect(deployment.replicas).toBe(2)
    const pod = deployment.template.spec
    const [container] = pod.containers
    expect(container.image).toBe('framework-api:0.1.0')
    expect(container.command).toEqual(['node', 'dist/cli/bin.js', 'gateway', '--built'])
    expect(container.ports).toEqual([{ name: 'http', containerPort: 8080 }])
    expect(container.env).toContainEqual({ name: 'GATEWAY_PORT', value: '8080' })
    expect(deployment.template.metadata.annotations).toEqual({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '8080',
      'prometheus.io/path': '/metrics',
    })
    expect(container.env).toContainEqual({ name: 'NODE_ENV', value: 'production' })
    expect(container.env).toContainEqual({ name: 'FRAMEWORK_NAMESPACE', value: 'framework' })
    expect(container.env).toContainEqual(expect.objectContaining({ name: 'ETCD_ENDPOINTS' }))
    // It registers nothing: no advertised address.
    expect(container.env.map((env: { name: string }) => env.name)).not.toContain('ADVERTISE_HOST')
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' })
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' })
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(10)
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 })
    expect(container.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
    })
    expect(find(docs, 'PodDisruptionBudget', 'gateway')!.spec.maxUnavailable).toBe(1)
    const services = docs.filter((doc) => doc.kind === 'Service')
    expect(services.filter((service) => service.spec.type === 'LoadBalancer')).toEqual([
      find(docs, 'Service', 'gateway'),
    ])
    expect(find(docs, 'Service', 'gateway')!.spec.ports).toEqual([
      { name: 'http', port: 80, targetPort: 'http' },
    ])
  })

  it('--etcd-endpoints uses an existing etcd; --out writes one file per group', () => {
    const out = join(workdir, 'k8s-out')
    const result = cli(
      [
        'k8s',
        '--out',
        out,
        '--etcd-endpoints',
        'http://etcd.infra:2379',
        '--registry',
        'r.example/shop/',
        '--replicas',
        'gateway=3',
      ],
      REPO_ROOT,
    )
    expect(result.code, result.stderr).toBe(0)
    expect(readdirSync(out).sort()).toEqual([
      '00-namespace.yaml',
      '20-api.yaml',
      '20-cache.yaml',
      '30-gateway.yaml',
    ])
    const gateway = parse(readFileSync(join(out, '30-gateway.yaml'), 'utf8'))
    validateAll(gateway)
    const edge = find(gateway, 'Deployment', 'gateway')!.spec
    expect(edge.replicas).toBe(3)
    expect(edge.template.spec.containers[0].image).toBe('r.example/shop/framework-api:0.1.0')
    const cache = parse(readFileSync(join(out, '20-cache.yaml'), 'utf8'))
    validateAll(cache)
    const [container] = find(cache, 'Deployment', 'cache')!.spec.template.spec.containers
    expect(container.image).toBe('r.example/shop/framework-cache:0.1.0')
    expect(container.env).toContainEqual({
      name: 'ETCD_ENDPOINTS',
      value: 'http://etcd.infra:2379',
    })
  })
})

describe('framework k8s --etcd-auth', () => {
  // setup-auth's files for a namespace of this test's own (the repo's .framework/ is ignored by git).
  const ns = `k8s-auth-${process.pid}`
  const dir = join(REPO_ROOT, '.framework/etcd')
  const users = ['api', 'cache', 'reader'].map((name) => `${ns}.${name}`)
  afterAll(() => {
    for (const user of users) rmSync(join(dir, `${user}.password`), { force: true })
  })

  it('without setup-auth: one line naming the command, exit 2', () => {
    const result = cli(['k8s', '--etcd-auth', '--namespace', `${ns}-none`], REPO_ROOT)
    expect(result.code).toBe(2)
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
    expect(result.stderr).toMatch(/run framework etcd setup-auth --namespace k8s-auth-\d+-none/)
  })

  it("each role's Deployment mounts its own etcd Secret; the gateway mounts the reader's", () => {
    mkdirSync(dir, { recursive: true })
    for (const user of users)
      writeFileSync(join(dir, `${user}.password`), `pw-of-${user}\n`, { mode: 0o600 })
    const result = cli(['k8s', '--etcd-auth', '--namespace', ns], REPO_ROOT)
    expect(result.code, result.stderr).toBe(0)
    const docs = parse(result.stdout)
    validateAll(docs)
    for (const [name, user] of [
      ['cache', `${ns}.cache`],
      ['api', `${ns}.api`],
      ['gateway', `${ns}.reader`],
    ] as const) {
      const secret = find(docs, 'Secret', `etcd-${name}`) as K8sDoc & {
        stringData: Record<string, string>
      }
      expect(secret.stringData).toEqual({ password: `pw-of-${user}` })
      const pod = find(docs, 'Deployment', name)!.spec.template.spec
      const [container] = pod.containers
      expect(container.env).toContainEqual({ name: 'ETCD_USERNAME', value: user })
      expect(container.env).toContainEqual({
        name: 'ETCD_PASSWORD_FILE',
        value: '/var/run/secrets/framework/etcd/password',
      })
      expect(pod.volumes).toContainEqual({
        name: 'etcd-credentials',
        secret: { secretName: `etcd-${name}`, defaultMode: 0o400 },
      })
      expect(container.volumeMounts).toContainEqual({
        name: 'etcd-credentials',
        mountPath: '/var/run/secrets/framework/etcd',
        readOnly: true,
      })
    }
  })
})

describe('framework k8s, generated app', () => {
  it('new → generate service ×2 with a dependency → k8s validates; the called role gets no Service; nothing exposed, no gateway', () => {
    const app = join(workdir, 'shop')
    expect(
      cli(['new', app, '--skip-install', '--framework', frameworkTarball()], workdir).code,
    ).toBe(0)
    mkdirSync(join(app, 'node_modules'))
    symlinkSync(REPO_ROOT, join(app, 'node_modules', 'framework'), 'dir')
    expect(cli(['generate', 'service', 'inventory'], app).code).toBe(0)
    expect(cli(['generate', 'service', 'orders', '--deps', 'inventory'], app).code).toBe(0)
    const result = cli(['k8s', '--replicas', 'inventory=2'], app)
    expect(result.code, result.stderr).toBe(0)
    const docs = parse(result.stdout)
    validateAll(docs)
    expect(find(docs, 'Deployment', 'inventory')!.spec.replicas).toBe(2)
    expect(find(docs, 'PodDisruptionBudget', 'inventory')).toBeDefined()
    expect(find(docs, 'Service', 'orders')).toBeDefined()
    expect(find(docs, 'Service', 'hello')).toBeDefined()
    expect(find(docs, 'Service', 'inventory')).toBeUndefined()
    expect(find(docs, 'Deployment', 'gateway')).toBeUndefined()
    const [orders] = find(docs, 'Deployment', 'orders')!.spec.template.spec.containers
    expect(orders.image).toBe('shop-orders:0.1.0')
  })
})
