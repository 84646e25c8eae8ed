/**
 * Where a served call's CPU goes, on each side of call-overhead's comparison: the framework's
 * cache instance and Moleculer's service node (0.14 and 0.15), each started once more with
 * `--cpu-prof`, driven at 100 concurrent for PROFILE_MS, stopped gracefully (the profile is written
 * at exit) and summed by category (cpu-profile.ts). The busy side is the service; the callers are
 * not profiled.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type cache from '../services/cache/index.js'
import { builtConnect, startBuiltInstance } from './built.js'
import { profileBreakdown, readProfile, topFunctions } from './cpu-profile.js'
import { markdownTable, measure } from './harness.js'
import { benchEnv } from './instance.js'
import { startMoleculer } from './moleculer-client.js'
import { MOLECULER_VERSIONS, type MoleculerVersion } from './moleculer-package.js'

const PROFILE_MS = 6_000
const TOP = 15
const NAMESPACE = 'bench-overhead-profiled'

type Breakdown = ReturnType<typeof profileBreakdown>

async function profiled(
  call: () => Promise<unknown>,
): Promise<{ callsPerSecond: number; failed: number }> {
  await measure('warmup', 'warmup', call, { total: 2_000, concurrency: 16, maxMs: 3_000 })
  const run = await measure('profiled', '100 concurrent', call, {
    total: 1_000_000,
    concurrency: 100,
    maxMs: PROFILE_MS,
  })
  return { callsPerSecond: run.callsPerSecond, failed: run.failed }
}

/** The framework's cache instance under --cpu-prof. */
async function profileFramework(etcdEndpoint: string, dir: string) {
  const connect = await builtConnect()
  const instance = startBuiltInstance(
    'cache',
    { ...benchEnv(etcdEndpoint, NAMESPACE), FRAMEWORK_TTL: '5' },
    ['--cpu-prof', `--cpu-prof-dir=${dir}`],
  )
  const client = connect<{ cache: typeof cache }>({
    deps: { cache: true },
    etcdEndpoints: etcdEndpoint,
    namespace: NAMESPACE,
  })
  try {
    await instance.waitForLog('registered in etcd')
    await client.deps.cache.set({ key: 'k', value: 'v' })
    return await profiled(() => client.deps.cache.get({ key: 'k' }))
  } finally {
    await client.close()
    await instance.kill('SIGTERM')
  }
}

async function profileMoleculer(dir: string, version: MoleculerVersion) {
  const moleculer = await startMoleculer({
    version,
    script: ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--import', 'tsx', 'bench/moleculer-node.ts'],
  })
  try {
    return await profiled(moleculer.call)
  } finally {
    await moleculer.close()
  }
}

type Run = { callsPerSecond: number; failed: number }

/** The profiles as one table: category, then ms and busy share on each side. */
export async function profileServices(etcdEndpoint: string): Promise<{
  table: string
  framework: Breakdown
  moleculer: Record<MoleculerVersion, Breakdown>
  runs: { framework: Run; moleculer: Record<MoleculerVersion, Run> }
}> {
  const work = mkdtempSync(join(tmpdir(), 'call-overhead-profile-'))
  try {
    const frameworkRun = await profileFramework(etcdEndpoint, join(work, 'framework'))
    const moleculerRuns = {} as Record<MoleculerVersion, Run>
    for (const version of MOLECULER_VERSIONS) {
      moleculerRuns[version] = await profileMoleculer(join(work, `moleculer-${version}`), version)
    }
    const profiles = [
      { name: 'framework cache', run: frameworkRun, profile: readProfile(join(work, 'framework')) },
      ...MOLECULER_VERSIONS.map((version) => ({
        name: `Moleculer ${version} node`,
        run: moleculerRuns[version],
        profile: readProfile(join(work, `moleculer-${version}`)),
      })),
    ].map((side) => ({ ...side, breakdown: profileBreakdown(side.profile) }))
    const tops = profiles.map(({ profile }) =>
      topFunctions(profile, TOP).map(
        (f) => `${f.name} (${f.where || 'native'}) ${(f.busyShare * 100).toFixed(1)}%`,
      ),
    )
    const categories = [
      ...new Set(profiles.flatMap((side) => side.breakdown.map((r) => r.category))),
    ]
    const cell = (rows: Breakdown, category: string) => {
      const row = rows.find((r) => r.category === category)
      if (!row) return '–'
      return Number.isNaN(row.busyShare)
        ? `${row.ms} ms`
        : `${row.ms} ms (${(row.busyShare * 100).toFixed(1)}%)`
    }
    const table = markdownTable(
      [
        'service CPU, self time (--cpu-prof, 100 concurrent)',
        ...profiles.map(({ name, run }) => `${name} (${run.callsPerSecond} calls/s)`),
      ],
      categories.map((category) => [
        category,
        ...profiles.map(({ breakdown }) => cell(breakdown, category)),
      ]),
    )
    const topTable = markdownTable(
      [`top ${TOP} by self time`, ...profiles.map(({ name }) => name)],
      Array.from({ length: TOP }, (_, i) => [i + 1, ...tops.map((top) => top[i] ?? '')]),
    )
    return {
      table: `${table}\n\n${topTable}`,
      framework: profiles[0]!.breakdown,
      // profiles[1..] are the Moleculer nodes, in MOLECULER_VERSIONS order.
      moleculer: Object.fromEntries(
        MOLECULER_VERSIONS.map((version, index) => [version, profiles[index + 1]!.breakdown]),
      ) as Record<MoleculerVersion, Breakdown>,
      runs: { framework: frameworkRun, moleculer: moleculerRuns },
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}
