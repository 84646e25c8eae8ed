import { DEFAULT_GATEWAY_PORT } from '../../gateway/config.js'
import type { RoleManifest } from '../build/manifest.js'
import { CliError } from '../cli-error.js'
import type { EtcdCredential } from '../etcd-credentials.js'
import { GATEWAY_NAME, type GatewayPlan, gatewayPlan } from '../gateway-plan.js'
import { scrapeAnnotations } from '../scrape-annotations.js'

/** One Kubernetes object, as plain data (apiVersion, kind, metadata, spec). */
export interface K8sObject {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace?: string; labels?: Record<string, string> }
  spec?: Record<string, unknown>
  /** A Secret's type and content. */
  type?: string
  stringData?: Record<string, string>
}

export interface K8sPlan {
  /** The app's built roles (from the build manifest). */
  roles: RoleManifest[]
  /** Kubernetes namespace, and the phone book namespace (FRAMEWORK_NAMESPACE). */
  namespace: string
  /** Image of each role: `<registry>/<namespace>-<role>:<tag>` (no registry: a local image). */
  registry: string | undefined
  tag: string
  /** `role=N` overrides of the definitions' replicas. */
  replicas: Record<string, number>
  /** An existing etcd's client URLs; undefined: a 3-member etcd StatefulSet in the namespace. */
  etcdEndpoints: string[] | undefined
  etcdImage: string
  /** How long an instance's SIGTERM waits for in-flight requests (FRAMEWORK_DRAIN_TIMEOUT_MS). */
  drainTimeoutMs: number
  /** The gateway's command in the image (`framework gateway --built`), used when a role exposes procedures. */
  gatewayCommand: string[]
  /** Each role's etcd user and the gateway's reader (`--etcd-auth`): Secrets mounted in the pods. */
  etcdCredentials?: { roles: Map<string, EtcdCredential>; reader: EtcdCredential } | undefined
}

/** Where a pod finds its etcd password (a Secret volume). */
const ETCD_SECRET_DIR = '/var/run/secrets/framework/etcd'

/**
 * `name`'s etcd user as a Secret, and the env, volume and mount that hand it to the container;
 * nothing without a credential. The file is mode 0400; with the pod's fsGroup Kubernetes makes it
 * 0440 root:1000, which the framework accepts as mounted for its own group.
 */
function etcdSecret(plan: K8sPlan, name: string, credential: EtcdCredential | undefined) {
  if (!credential) return undefined
  const secretName = `etcd-${name}`
  return {
    secret: {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: secretName, namespace: plan.namespace, labels: labels(plan, name) },
      type: 'Opaque',
      stringData: { password: credential.password },
    } satisfies K8sObject,
    env: [
      { name: 'ETCD_USERNAME', value: credential.user },
      { name: 'ETCD_PASSWORD_FILE', value: `${ETCD_SECRET_DIR}/password` },
    ],
    volume: { name: 'etcd-credentials', secret: { secretName, defaultMode: 0o400 } },
    mount: { name: 'etcd-credentials', mountPath: ETCD_SECRET_DIR, readOnly: true },
  }
}

/** The port every instance listens on in its pod (as in compose's bridge network). */
export const CONTAINER_PORT = 3000
const ETCD_MEMBERS = 3
const ETCD_CLIENT_PORT = 2379
const ETCD_PEER_PORT = 2380
const MAX_REPLICAS = 1000
/** Gateways behind the LoadBalancer: stateless, two so that one can be drained or lost. */
const GATEWAY_REPLICAS = 2
/** Past the drain, `framework start` allows 10 s for the lease revoke and closing clients. */
const SHUTDOWN_MARGIN_S = 15
/** A DNS-1123 label: what Kubernetes accepts as a namespace or object name. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/

/** The uid:gid the images run as (the runtime stage's `USER 1000`). */
const NON_ROOT = {
  runAsNonRoot: true,
  runAsUser: 1000,
  runAsGroup: 1000,
  fsGroup: 1000,
  seccompProfile: { type: 'RuntimeDefault' },
}
const CONTAINER_SECURITY = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
}

const labels = (plan: K8sPlan, name: string) => ({
  'app.kubernetes.io/name': name,
  'app.kubernetes.io/part-of': plan.namespace,
  'app.kubernetes.io/managed-by': 'framework',
})
const selector = (name: string) => ({ 'app.kubernetes.io/name': name })

/** Checks what Kubernetes would refuse, as one line naming the role and the fix (exit 2). */
function checkPlan(plan: K8sPlan): void {
  if (!DNS_LABEL.test(plan.namespace)) {
    throw new CliError(
      `namespace '${plan.namespace}' is not a Kubernetes name (lower-case letters, digits, '-', at most 63): pass --namespace <name>`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  const gatewayReplicas = plan.replicas[GATEWAY_NAME]
  if (
    gatewayReplicas !== undefined &&
    (!Number.isInteger(gatewayReplicas) || gatewayReplicas < 1 || gatewayReplicas > MAX_REPLICAS)
  ) {
    throw new CliError(
      `the gateway has replicas ${gatewayReplicas}: use an integer 1-${MAX_REPLICAS} (--replicas ${GATEWAY_NAME}=N)`,
      'FRAMEWORK_ERR_USAGE',
    )
  }
  for (const role of plan.roles) {
    const replicas = plan.replicas[role.role] ?? role.replicas
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > MAX_REPLICAS) {
      throw new CliError(
        `role '${role.role}' has replicas ${replicas}: use an integer 1-${MAX_REPLICAS} (defineService replicas or --replicas ${role.role}=N)`,
        'FRAMEWORK_ERR_USAGE',
      )
    }
    if (
      role.port !== null &&
      (!Number.isInteger(role.port) || role.port < 1 || role.port > 65535)
    ) {
      throw new CliError(
        `role '${role.role}' has port ${role.port}: use 1-65535 in defineService, or none`,
        'FRAMEWORK_ERR_USAGE',
      )
    }
  }
}

/**
 * Roles reached from outside the mesh by their own Service: those no other role depends on
 * (the app's entry points) and that expose nothing (an exposing role's door is the gateway).
 */
export function entryRoles(roles: RoleManifest[]): string[] {
  const called = new Set(roles.flatMap((role) => role.deps))
  return roles
    .filter(({ role, expose }) => !called.has(role) && expose.length === 0)
    .map(({ role }) => role)
}

/** `<registry>/<namespace>-<role>:<tag>`; no registry: a local image. */
const imageOf = (plan: K8sPlan, role: string) =>
  `${plan.registry ? `${plan.registry.replace(/\/+$/, '')}/` : ''}${plan.namespace}-${role}:${plan.tag}`

/** SIGTERM drains (after revoking the lease, for an instance): the pod needs the drain and a margin. */
const gracePeriodSeconds = (plan: K8sPlan) =>
  Math.ceil(plan.drainTimeoutMs / 1000) + SHUTDOWN_MARGIN_S

/** Readiness on `/readyz`, liveness on `/healthz`: roles and the gateway answer both. */
const PROBES = {
  readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 3 },
  livenessProbe: {
    httpGet: { path: '/healthz', port: 'http' },
    initialDelaySeconds: 10,
    periodSeconds: 10,
  },
}

const RESOURCES = {
  requests: { cpu: '100m', memory: '128Mi' },
  limits: { cpu: '1', memory: '256Mi' },
}

/** One new pod before an old one goes: callers always find one. */
const ROLLING_UPDATE = {
  type: 'RollingUpdate',
  rollingUpdate: { maxSurge: 1, maxUnavailable: 0 },
}

function etcdObjects(plan: K8sPlan): K8sObject[] {
  const ns = plan.namespace
  const member = (i: number) => `etcd-${i}`
  const host = (name: string) => `${name}.etcd.${ns}.svc`
  const cluster = Array.from(
    { length: ETCD_MEMBERS },
    (_, i) => `${member(i)}=http://${host(member(i))}:${ETCD_PEER_PORT}`,
  ).join(',')
  const meta = { name: 'etcd', namespace: ns, labels: labels(plan, 'etcd') }
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      // Headless: each member gets a stable DNS name (etcd-0.etcd.<ns>.svc) for peers and clients.
      metadata: meta,
      spec: {
        clusterIP: 'None',
        publishNotReadyAddresses: true,
        selector: selector('etcd'),
        ports: [
          { name: 'client', port: ETCD_CLIENT_PORT },
          { name: 'peer', port: ETCD_PEER_PORT },
        ],
      },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: meta,
      spec: {
        serviceName: 'etcd',
        replicas: ETCD_MEMBERS,
        // The members must all start to form a quorum: not one after another.
        podManagementPolicy: 'Parallel',
        selector: { matchLabels: selector('etcd') },
        template: {
          metadata: { labels: labels(plan, 'etcd') },
          spec: {
            securityContext: NON_ROOT,
            containers: [
              {
                name: 'etcd',
                image: plan.etcdImage,
                env: [
                  { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                ],
                command: [
                  'etcd',
                  '--name=$(POD_NAME)',
                  '--data-dir=/var/lib/etcd/data',
                  `--listen-client-urls=http://0.0.0.0:${ETCD_CLIENT_PORT}`,
                  `--advertise-client-urls=http://$(POD_NAME).etcd.${ns}.svc:${ETCD_CLIENT_PORT}`,
                  `--listen-peer-urls=http://0.0.0.0:${ETCD_PEER_PORT}`,
                  `--initial-advertise-peer-urls=http://$(POD_NAME).etcd.${ns}.svc:${ETCD_PEER_PORT}`,
                  `--initial-cluster=${cluster}`,
                  '--initial-cluster-state=new',
                  `--initial-cluster-token=${ns}-etcd`,
                ],
                ports: [
                  { name: 'client', containerPort: ETCD_CLIENT_PORT },
                  { name: 'peer', containerPort: ETCD_PEER_PORT },
                ],
                readinessProbe: {
                  httpGet: { path: '/health', port: 'client' },
                  periodSeconds: 5,
                },
                livenessProbe: {
                  httpGet: { path: '/health', port: 'client' },
                  initialDelaySeconds: 30,
                  periodSeconds: 10,
                  failureThreshold: 6,
                },
                resources: {
                  requests: { cpu: '100m', memory: '128Mi' },
                  limits: { memory: '512Mi' },
                },
                securityContext: CONTAINER_SECURITY,
                volumeMounts: [{ name: 'data', mountPath: '/var/lib/etcd' }],
              },
            ],
          },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: 'data' },
            spec: {
              accessModes: ['ReadWriteOnce'],
              resources: { requests: { storage: '1Gi' } },
            },
          },
        ],
      },
    },
    {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      // A quorum of 3 survives one member down: never drain two at once.
      metadata: meta,
      spec: { maxUnavailable: 1, selector: { matchLabels: selector('etcd') } },
    },
  ]
}

/** The environment every framework container gets, with its listening port as `portVariable`. */
function commonEnv(plan: K8sPlan, etcd: string, portVariable: string, port: number) {
  return [
    { name: 'ETCD_ENDPOINTS', value: etcd },
    { name: 'FRAMEWORK_NAMESPACE', value: plan.namespace },
    { name: portVariable, value: String(port) },
    { name: 'NODE_ENV', value: 'production' },
    { name: 'FRAMEWORK_DRAIN_TIMEOUT_MS', value: String(plan.drainTimeoutMs) },
  ]
}

/**
 * A framework process's Deployment (rolling updates, the drain's grace period, non-root, the
 * scrape annotations for `port`) running `container`, and its PodDisruptionBudget when it has
 * more than one replica.
 */
function deploymentObjects(
  plan: K8sPlan,
  meta: { name: string; namespace: string },
  replicas: number,
  port: number,
  container: Record<string, unknown>,
  pod: { volumes?: unknown[] } = {},
): K8sObject[] {
  const objects: K8sObject[] = [
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta,
      spec: {
        replicas,
        selector: { matchLabels: selector(meta.name) },
        strategy: ROLLING_UPDATE,
        template: {
          metadata: {
            labels: labels(plan, meta.name),
            // Where a scraper (Prometheus' pod service discovery) finds /metrics.
            annotations: scrapeAnnotations(port),
          },
          spec: {
            terminationGracePeriodSeconds: gracePeriodSeconds(plan),
            securityContext: NON_ROOT,
            containers: [container],
            ...pod,
          },
        },
      },
    },
  ]
  if (replicas > 1) {
    objects.push({
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: meta,
      spec: { maxUnavailable: 1, selector: { matchLabels: selector(meta.name) } },
    })
  }
  return objects
}

function roleObjects(plan: K8sPlan, role: RoleManifest, etcd: string, entry: boolean): K8sObject[] {
  const replicas = plan.replicas[role.role] ?? role.replicas
  const meta = { name: role.role, namespace: plan.namespace, labels: labels(plan, role.role) }
  const image = imageOf(plan, role.role)
  const credential = etcdSecret(plan, role.role, plan.etcdCredentials?.roles.get(role.role))
  const container = {
    name: role.role,
    image,
    env: [
      ...commonEnv(plan, etcd, 'PORT', CONTAINER_PORT),
      // The phone book gets the pod's own address (downward API).
      { name: 'ADVERTISE_HOST', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      ...(credential?.env ?? []),
    ],
    ports: [{ name: 'http', containerPort: CONTAINER_PORT }],
    // Ready = registered in the phone book; alive = the process answers.
    ...PROBES,
    resources: RESOURCES,
    securityContext: CONTAINER_SECURITY,
    // The root filesystem is read-only: the port file goes to /tmp.
    volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }, ...(credential ? [credential.mount] : [])],
  }
  const objects = deploymentObjects(plan, meta, replicas, CONTAINER_PORT, container, {
    volumes: [{ name: 'tmp', emptyDir: {} }, ...(credential ? [credential.volume] : [])],
  })
  if (credential) objects.unshift(credential.secret)
  if (entry) {
    objects.push({
      apiVersion: 'v1',
      kind: 'Service',
      // Only entry points that expose nothing get one: services reach each other through the
      // phone book (pod IPs), and exposed procedures through the gateway.
      metadata: meta,
      spec: {
        selector: selector(role.role),
        ports: [{ name: 'http', port: 80, targetPort: 'http' }],
      },
    })
  }
  return objects
}

/**
 * The edge: `framework gateway` on the bundles, from the image of a role that exposes procedures
 * (every image holds every bundle), behind the app's only LoadBalancer Service. It registers
 * nothing in the phone book, so it needs no advertised address; it writes no file either.
 */
function gatewayObjects(plan: K8sPlan, edge: GatewayPlan, etcd: string): K8sObject[] {
  const replicas = plan.replicas[GATEWAY_NAME] ?? GATEWAY_REPLICAS
  const meta = { name: GATEWAY_NAME, namespace: plan.namespace, labels: labels(plan, GATEWAY_NAME) }
  // The gateway only reads the phone book: the namespace's read-only etcd user.
  const credential = etcdSecret(plan, GATEWAY_NAME, plan.etcdCredentials?.reader)
  const container = {
    name: GATEWAY_NAME,
    image: imageOf(plan, edge.imageRole),
    command: plan.gatewayCommand,
    env: [
      ...commonEnv(plan, etcd, 'GATEWAY_PORT', DEFAULT_GATEWAY_PORT),
      ...(credential?.env ?? []),
    ],
    ...(credential ? { volumeMounts: [credential.mount] } : {}),
    ports: [{ name: 'http', containerPort: DEFAULT_GATEWAY_PORT }],
    // Ready = every exposing role listed in the phone book, and not draining.
    ...PROBES,
    resources: RESOURCES,
    securityContext: CONTAINER_SECURITY,
  }
  const objects = deploymentObjects(
    plan,
    meta,
    replicas,
    DEFAULT_GATEWAY_PORT,
    container,
    credential ? { volumes: [credential.volume] } : {},
  )
  if (credential) objects.unshift(credential.secret)
  objects.push({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta,
    spec: {
      type: 'LoadBalancer',
      selector: selector(GATEWAY_NAME),
      ports: [{ name: 'http', port: 80, targetPort: 'http' }],
    },
  })
  return objects
}

/** Every object of the app, grouped by the file each goes to (applied in name order). */
export function k8sObjects(plan: K8sPlan): Map<string, K8sObject[]> {
  checkPlan(plan)
  const files = new Map<string, K8sObject[]>()
  files.set('00-namespace.yaml', [
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: plan.namespace, labels: labels(plan, plan.namespace) },
    },
  ])
  const etcd = plan.etcdEndpoints
    ? plan.etcdEndpoints.join(',')
    : Array.from(
        { length: ETCD_MEMBERS },
        (_, i) => `http://etcd-${i}.etcd.${plan.namespace}.svc:${ETCD_CLIENT_PORT}`,
      ).join(',')
  if (!plan.etcdEndpoints) files.set('10-etcd.yaml', etcdObjects(plan))
  const entries = entryRoles(plan.roles)
  for (const role of plan.roles) {
    files.set(`20-${role.role}.yaml`, roleObjects(plan, role, etcd, entries.includes(role.role)))
  }
  const edge = gatewayPlan(plan.roles)
  if (edge) files.set(`30-${GATEWAY_NAME}.yaml`, gatewayObjects(plan, edge, etcd))
  return files
}
