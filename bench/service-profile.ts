/**
 * Where a call's CPU goes, on both sides of call-overhead's comparison: the framework's cache
 * instance and Moleculer's service node (0.14 and 0.15), each started once more with
 * `--cpu-prof`, driven at 100 concurrent for PROFILE_MS, stopped gracefully (the profile is written
 * at exit) and summed by category (cpu-profile.ts); and the caller, this process, profiled through
 * the inspector during the same measured run. Each side also as busy µs per call.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type cache from '../services/cache/index.js'
import { builtConnect, startBuiltInstance } from './built.js'
import { type CpuProfile, profileBreakdown, readProfile, topFunctions } from './cpu-profile.js'
import { markdownTable, measure } from './harness.js'
import { benchEnv } from './instance.js'
import { startMoleculer } from './moleculer-client.js'
import { MOLECULER_VERSIONS, type MoleculerVersion } from './moleculer-package.js'

const PROFILE_MS = 6_000
const TOP = 15
const NAMESPACE = 'bench-overhead-profiled'

type Breakdown = ReturnType<typeof profileBreakdown>

type Run = { callsPerSecond: number; calls: number; failed: number; caller: CpuProfile }

/** Warms up, then the measured run at 100 concurrent with this process (the caller) profiled. */
async function profiled(call: () => Promise<unknown>): Promise<Run> {
  await measure('warmup', 'warmup', call, { total: 2_000, concurrency: 16, maxMs: 3_000 })
  const session = new Session()
  session.connect()
  try {
    await session.post('Profiler.enable')
    await session.post('Profiler.start')
    const run = await measure('profiled', '100 concurrent', call, {
      total: 1_000_000,
      concurrency: 100,
      maxMs: PROFILE_MS,
    })
    const { profile } = await session.post('Profiler.stop')
    return {
      callsPerSecond: run.callsPerSecond,
      calls: run.calls,
      failed: run.failed,
      caller: profile as unknown as CpuProfile,
    }
  } finally {
    session.disconnect()
  }
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

/** The profiles as one table: category, then ms and busy share on each side. */
export async function profileServices(etcdEndpoint: string): Promise<{
  table: string
  framework: Breakdown
  moleculer: Record<MoleculerVersion, Breakdown>
  runs: {
    framework: RunFigures
    moleculer: Record<MoleculerVersion, RunFigures>
  }
}> {
  const work = mkdtempSync(join(tmpdir(), 'call-overhead-profile-'))
  try {
    const frameworkRun = await profileFramework(etcdEndpoint, join(work, 'framework'))
    const moleculerRuns = {} as Record<MoleculerVersion, Run>
    for (const version of MOLECULER_VERSIONS) {
      moleculerRuns[version] = await profileMoleculer(join(work, `moleculer-${version}`), version)
    }
    const services = [
      { name: 'framework cache', run: frameworkRun, profile: readProfile(join(work, 'framework')) },
      ...MOLECULER_VERSIONS.map((version) => ({
        name: `Moleculer ${version} node`,
        run: moleculerRuns[version],
        profile: readProfile(join(work, `moleculer-${version}`)),
      })),
    ].map((side) => ({ ...side, breakdown: profileBreakdown(side.profile) }))
    const callers = services.map(({ name, run }) => ({
      name: name === 'framework cache' ? 'ctx.deps caller' : name.replace(' node', ' caller'),
      run,
      profile: run.caller,
      breakdown: profileBreakdown(run.caller),
    }))
    const profiles = services
    const tops = profiles.map(({ profile }) =>
      topFunctions(profile, TOP).map(
        (f) => `${f.name} (${f.where || 'native'}) ${(f.busyShare * 100).toFixed(1)}%`,
      ),
    )
    const table = breakdownTable('service CPU, self time (--cpu-prof, 100 concurrent)', services)
    const callerTable = breakdownTable(
      'caller CPU (this process, the same runs), self time',
      callers,
    )
    const topTable = markdownTable(
      [`top ${TOP} by self time`, ...profiles.map(({ name }) => name)],
      Array.from({ length: TOP }, (_, i) => [i + 1, ...tops.map((top) => top[i] ?? '')]),
    )
    return {
      table: `${table}\n\n${topTable}\n\n${callerTable}`,
      framework: profiles[0]!.breakdown,
      // profiles[1..] are the Moleculer nodes, in MOLECULER_VERSIONS order.
      moleculer: Object.fromEntries(
        MOLECULER_VERSIONS.map((version, index) => [version, profiles[index + 1]!.breakdown]),
      ) as Record<MoleculerVersion, Breakdown>,
      runs: {
        framework: figures(frameworkRun),
        moleculer: Object.fromEntries(
          MOLECULER_VERSIONS.map((version) => [version, figures(moleculerRuns[version])]),
        ) as Record<MoleculerVersion, RunFigures>,
      },
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

/** A run's figures for the JSON (the caller's profile left out). */
type RunFigures = Omit<Run, 'caller'>

function figures({ caller: _, ...rest }: Run): RunFigures {
  return rest
}

/**
 * One table of several sides' breakdowns: a row per category (ms and busy share), then the busy
 * time per call (µs), the figure that compares sides measured at different rates.
 */
function breakdownTable(
  title: string,
  sides: { name: string; run: Run; breakdown: Breakdown }[],
): string {
  const categories = [...new Set(sides.flatMap((side) => side.breakdown.map((r) => r.category)))]
  const cell = (rows: Breakdown, category: string) => {
    const row = rows.find((r) => r.category === category)
    if (!row) return '–'
    return Number.isNaN(row.busyShare)
      ? `${row.ms} ms`
      : `${row.ms} ms (${(row.busyShare * 100).toFixed(1)}%)`
  }
  const busyMs = (rows: Breakdown) =>
    rows.filter((row) => !Number.isNaN(row.busyShare)).reduce((sum, row) => sum + row.ms, 0)
  return markdownTable(
    [title, ...sides.map(({ name, run }) => `${name} (${run.callsPerSecond} calls/s)`)],
    [
      ...categories.map((category) => [
        category,
        ...sides.map(({ breakdown }) => cell(breakdown, category)),
      ]),
      [
        '**busy µs per call**',
        ...sides.map(
          ({ run, breakdown }) => `**${((busyMs(breakdown) * 1000) / run.calls).toFixed(1)} µs**`,
        ),
      ],
    ],
  )
}
