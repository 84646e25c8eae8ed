/**
 * Which Moleculer the baseline runs: 0.14 (package `moleculer`) or 0.15 (the npm alias
 * `moleculer-0.15`). Each is imported only when asked for, so a node process loads one Moleculer
 * (footprint measures that process's RSS). The bench uses a handful of members, alike in both;
 * they are typed here once instead of through either package's own typings.
 */
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

export const MOLECULER_VERSIONS = ['0.14', '0.15'] as const
export type MoleculerVersion = (typeof MOLECULER_VERSIONS)[number]

const SPECIFIERS: Record<MoleculerVersion, string> = {
  '0.14': 'moleculer',
  '0.15': 'moleculer-0.15',
}

/** What the bench calls on a ServiceBroker (the same in 0.14 and 0.15). */
export interface Broker {
  start(): Promise<void>
  stop(): Promise<void>
  call(action: string, params: unknown): Promise<unknown>
  waitForServices(services: string, timeout: number): Promise<unknown>
  createService(schema: object): unknown
}

/** Moleculer's TcpTransporter, with the members the loopback subclass overrides or uses. */
export interface TcpTransporter {
  opts: Record<string, unknown>
  reader: unknown
  writer: unknown
  logger: { debug: (...args: unknown[]) => void }
  nodes: { disconnected: (nodeID: string, unexpected: boolean) => void }
}

export interface MoleculerPackage {
  version: MoleculerVersion
  /** The package's own MOLECULER_VERSION, e.g. "0.15.2". */
  installed: string
  ServiceBroker: new (options: object) => Broker
  TcpTransporter: new (options: object) => TcpTransporter
  ValidationError: abstract new (...args: never[]) => Error
  /** The package's src/transporters/tcp (TcpReader, TcpWriter: not in its exports). */
  tcpDir: string
}

interface ModuleShape {
  MOLECULER_VERSION: string
  ServiceBroker: MoleculerPackage['ServiceBroker']
  Transporters: { TCP: MoleculerPackage['TcpTransporter'] }
  Errors: { ValidationError: MoleculerPackage['ValidationError'] }
}

const require = createRequire(import.meta.url)
const loaded = new Map<MoleculerVersion, MoleculerPackage>()

export function parseMoleculerVersion(value: string, setting: string): MoleculerVersion {
  const version = MOLECULER_VERSIONS.find((v) => v === value)
  if (!version) {
    throw new Error(
      `${setting}: unknown Moleculer version '${value}'; use one of ${MOLECULER_VERSIONS.join(', ')}`,
    )
  }
  return version
}

export async function loadMoleculer(version: MoleculerVersion): Promise<MoleculerPackage> {
  const cached = loaded.get(version)
  if (cached) return cached
  const specifier = SPECIFIERS[version]
  // Both are CommonJS underneath: the default export is their module.exports.
  const module = ((await import(specifier)) as { default: ModuleShape }).default
  // An alias pointing at the wrong release would make the comparison silently meaningless.
  if (!module.MOLECULER_VERSION.startsWith(`${version}.`)) {
    throw new Error(
      `package '${specifier}' is Moleculer ${module.MOLECULER_VERSION}, not ${version}; ` +
        'reinstall with npm ci',
    )
  }
  const pkg: MoleculerPackage = {
    version,
    installed: module.MOLECULER_VERSION,
    ServiceBroker: module.ServiceBroker,
    TcpTransporter: module.Transporters.TCP,
    ValidationError: module.Errors.ValidationError,
    tcpDir: join(dirname(require.resolve(specifier)), 'src/transporters/tcp'),
  }
  loaded.set(version, pkg)
  return pkg
}
