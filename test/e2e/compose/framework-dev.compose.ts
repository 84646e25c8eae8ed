import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ContainerState, composeCommand } from '../../../framework/cli/docker.js'
import { CallLoop } from '../../support/call-loop.js'
import { whenNoLongerTried } from '../../support/ejections.js'
import { REPO_ROOT } from '../../support/instance.js'
import { PhoneBookProbe } from '../../support/phone-book.js'
import { waitFor } from '../../support/wait.js'
import { Deletions, freeLowPort, freePortPair } from './compose-support.js'
import { DockerEngine, ensureDockerTools, runChecked } from './docker-engine.js'
import { ExampleApp } from './example-app.js'
import { type HostImages, hostImages } from './host-images.js'

// `framework dev` on a real Docker engine with compose, host network (this machine has no bridge),
// everything on 127.0.0.1. The example app: etcd, cache ×3, api, and the gateway in front of api
// (with a gateway.ts of the test's, so that its bundle runs in the image too). The tests run in
// order, each on what the one before left.
const NAMESPACE = 'framework'
const SETUP_TIMEOUT_MS = 10 * 60_000
// dockerd's log, every command's output and, if something was left running, the containers' logs.
const LOG_DIR = join(REPO_ROOT, '.tmp', 'compose')
const suiteStarted = Date.now()
const say = (line: string) => process.stdout.write(`[compose] ${line}\n`)
const measured: string[] = []
const note = (line: string) => {
  measured.push(line)
  say(line)
}

let workDir: string | undefined
let engine: DockerEngine | undefined
let app: ExampleApp | undefined
let images: HostImages
let etcd: string
let gateway: string
let probe: PhoneBookProbe | undefined

function theApp(): ExampleApp {
  if (!app) throw new Error('the app is set up in beforeAll')
  return app
}

function theProbe(): PhoneBookProbe {
  if (!probe) throw new Error('the probe is made in beforeAll')
  return probe
}

const keyExists = async (key: string) => (await theProbe().client.get(key).string()) !== null

const running = (role: string) =>
  theApp()
    .containers()
    .filter((container) => container.service === role && container.status === 'running')

/** Signals the engine sends to the project's containers (docker events' `kill`) and their exits (`die`), with times. */
function watchKillSignals(project: string) {
  const since = String(Math.floor(Date.now() / 1000) - 1)
  const events = spawn(
    'docker',
    [
      'events',
      '--since',
      since,
      '--format',
      '{{json .}}',
      '--filter',
      'event=kill',
      '--filter',
      'event=die',
      '--filter',
      `label=com.docker.compose.project=${project}`,
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  )
  const signals: { id: string; signal: string; at: number }[] = []
  const exits: { id: string; at: number }[] = []
  let buffered = ''
  events.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    const lines = buffered.split('\n')
    buffered = lines.pop() ?? ''
    for (const text of lines) {
      const event = JSON.parse(text) as {
        id: string
        Action?: string
        status?: string
        timeNano: number
        Actor: { Attributes: Record<string, string> }
      }
      if ((event.Action ?? event.status) === 'die') {
        exits.push({ id: event.id, at: Math.round(event.timeNano / 1e6) })
        continue
      }
      signals.push({
        id: event.id,
        signal: event.Actor.Attributes.signal ?? '',
        at: Math.round(event.timeNano / 1e6),
      })
    }
  })
  return {
    signals,
    exits,
    stop: () => {
      if (events.exitCode === null && events.signalCode === null) events.kill('SIGTERM')
    },
  }
}

describe('framework dev in docker compose (real engine, host network)', () => {
  beforeAll(async () => {
    workDir = realpathSync(mkdtempSync(join(tmpdir(), 'framework-compose-')))
    rmSync(LOG_DIR, { recursive: true, force: true })
    mkdirSync(LOG_DIR, { recursive: true })
    say(`logs: ${LOG_DIR}`)
    ensureDockerTools(say)
    engine = await DockerEngine.ensure(LOG_DIR, say)
    const compose = composeCommand()
    if (!compose) throw new Error('no compose (v2 plugin or v1 docker-compose) after installing')
    say(`compose: ${compose.join(' ')}`)
    images = hostImages(workDir, say)
    say(`base images: ${images.node}, ${images.etcd}`)
    app = new ExampleApp(workDir, LOG_DIR, `fwcompose${process.pid}`, compose)
    // The app's edge settings: one allowed origin, to see gateway.ts's bundle answer in the image.
    writeFileSync(
      join(app.root, 'gateway.ts'),
      "import { defineGateway } from './framework/index.js'\nexport default defineGateway({ cors: { origins: ['http://shop.test'] } })\n",
    )
    const etcdPort = await freePortPair()
    etcd = `http://127.0.0.1:${etcdPort}`
    gateway = `http://127.0.0.1:${await freeLowPort([etcdPort, etcdPort + 1])}`
    probe = new PhoneBookProbe(etcd, NAMESPACE)
  }, SETUP_TIMEOUT_MS)

  afterAll(async () => {
    probe?.close()
    try {
      if (app && app.labelledContainerIds().length > 0) {
        const logs = await app.composeRun(['logs', '--no-color'], 60_000)
        writeFileSync(join(LOG_DIR, 'containers.log'), logs.output)
        const down = await app.cli(['down'], 120_000)
        if (down.code !== 0) say(`framework down in cleanup failed:\n${down.output}`)
        const left = app.labelledContainerIds()
        if (left.length > 0) runChecked('docker', ['rm', '--force', ...left])
      }
    } finally {
      engine?.removeBuiltImages('framework-*:dev', say)
      await engine?.stop()
      if (engine?.startedPid) say(`stopped dockerd (pid ${engine.startedPid})`)
      if (workDir) rmSync(workDir, { recursive: true, force: true })
      for (const line of measured) say(`measured: ${line}`)
      say(`suite wall time: ${((Date.now() - suiteStarted) / 1000).toFixed(1)} s`)
    }
  }, 5 * 60_000)

  it('dev --detach: etcd healthy, every service registered, a call through api reaches cache', async () => {
    const dev = await theApp().cli(
      [
        'dev',
        '--detach',
        '--network',
        'host',
        '--base-image',
        images.node,
        '--etcd-image',
        images.etcd,
        '--etcd-port',
        new URL(etcd).port,
        '--gateway-port',
        new URL(gateway).port,
        '--replicas',
        'cache=3',
      ],
      SETUP_TIMEOUT_MS,
    )
    expect(dev.code, dev.output).toBe(0)
    note(`framework dev --detach (build, up, all healthy): ${(dev.ms / 1000).toFixed(1)} s`)
    expect(dev.output).toMatch(/6 containers healthy/)
    expect(dev.output).toContain(`gateway at ${gateway} for api:`)

    // --detach returns once everything is healthy: no waiting needed from here on.
    const containers = theApp().containers()
    const byService = (service: string) => containers.filter((c) => c.service === service)
    expect(byService('etcd').map((c) => c.health)).toEqual(['healthy'])
    expect(byService('cache')).toHaveLength(3)
    expect(byService('api')).toHaveLength(1)
    expect(byService('gateway')).toHaveLength(1)
    expect(containers.every((c: ContainerState) => c.health === 'healthy')).toBe(true)

    const ps = await theApp().cli(['ps', '--json', '--etcd', etcd])
    expect(ps.code, ps.output).toBe(0)
    const book = JSON.parse(ps.output) as {
      namespace: string
      instances: { role: string; id: string; url: string; stale: boolean }[]
    }
    expect(book.namespace).toBe(NAMESPACE)
    expect(book.instances.map((i) => i.role)).toEqual(['api', 'cache', 'cache', 'cache'])
    expect(book.instances.every((i) => !i.stale && i.url.startsWith('http://127.0.0.1:'))).toBe(
      true,
    )

    const call = await theApp().cli(['call', 'api.get', '{"key":"a"}', '--etcd', etcd])
    expect(call.code, call.output).toBe(0)
    const answer = JSON.parse(call.output) as { servedBy: string }
    const cacheIds = book.instances.filter((i) => i.role === 'cache').map((i) => i.id)
    expect(cacheIds).toContain(answer.servedBy)
  })

  it('the gateway on its host port: api.get by /trpc and /api, cache unreachable (404), gateway.ts from its bundle', async () => {
    const [container] = theApp()
      .containers()
      .filter((c) => c.service === 'gateway')
    expect(container?.health).toBe('healthy')
    // It ran the bundles, as the image holds no TypeScript.
    const loaded = theApp()
      .logLines(container!.id)
      .filter((line) => line.code === 'bundle')
      .map((line) => line.msg)
    expect(loaded).toEqual([
      'running the built bundle .framework/build/api.mjs',
      'running the built bundle .framework/build/_gateway.mjs',
    ])
    const input = encodeURIComponent('{"key":"a"}')
    const trpc = await fetch(`${gateway}/trpc/api.get?input=${input}`)
    expect(trpc.status).toBe(200)
    const answer = (await trpc.json()) as { result: { data: { servedBy: string } } }
    expect(answer.result.data.servedBy).toMatch(/^cache-/)
    const json = await fetch(`${gateway}/api/api/get?input=${input}`)
    expect(json.status).toBe(200)
    expect(await json.json()).toMatchObject({
      hit: false,
      servedBy: expect.stringMatching(/^cache-/),
    })
    for (const path of [`/trpc/cache.get?input=${input}`, `/api/cache/get?input=${input}`]) {
      expect((await fetch(`${gateway}${path}`)).status, path).toBe(404)
    }
    const preflight = await fetch(`${gateway}/trpc/api.get`, {
      method: 'OPTIONS',
      headers: { origin: 'http://shop.test', 'access-control-request-method': 'GET' },
    })
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://shop.test')
  })

  it('docker kill of a cache replica under a call loop: no call fails, its record expires, the api stops trying it', async () => {
    const entries = await theProbe().entries()
    const apiKey = Object.keys(entries).find((key) => key.includes('/services/api/'))
    expect(apiKey).toBeDefined()
    const apiUrl = (await theProbe().record(apiKey!)).url
    const apiContainer = running('api')[0]!
    const victim = running('cache')[0]!
    const key = theApp().registeredKey(victim.id)
    const victimId = key.split('/').pop()!
    const { grantedTtl } = await theProbe().lease(key)

    const loop = new CallLoop(apiUrl, 100_000, { concurrency: 4, maxMs: 90_000, pauseMs: 2 })
    try {
      await loop.reached(200)
      const servedBefore = loop.samples.filter((s) => s.servedBy === victimId).length
      const killedAt = Date.now()
      runChecked('docker', ['kill', victim.id])
      const goneMs = await waitFor(
        `${key} to expire`,
        async () => !(await keyExists(key)),
        (grantedTtl + 15) * 1000,
        20,
      )
      // The api met the dead replica (refused connections, ejections in its log) and stopped
      // trying it once its record was gone: a caller that still listed it would try it again
      // after every ejection's backoff.
      const ejections = (
        await whenNoLongerTried(() => theApp().logLines(apiContainer.id), victimId, {
          pollMs: 1_000,
        })
      ).filter((ejection) => ejection.at >= killedAt)
      await loop.reached(loop.samples.length + 200)
      await loop.stop()
      const afterKill = loop.between(killedAt)
      note(
        `docker kill → key gone in ${goneMs} ms (lease TTL ${grantedTtl} s); ${loop.samples.length} calls, ` +
          `${afterKill.length} after the kill, ${loop.failures.length} failed; the api ejected the dead replica ${ejections.length}×`,
      )
      expect(servedBefore, 'the killed replica served no call before').toBeGreaterThan(0)
      expect(loop.failures).toEqual([])
      expect(afterKill.length).toBeGreaterThan(200)
      expect(ejections.length).toBeGreaterThan(0)
      expect(ejections.at(-1)!.at).toBeLessThanOrEqual(killedAt + goneMs + 2_000)
    } finally {
      await loop.stop()
    }
    // SIGKILL is not restarted (restart: unless-stopped counts a kill as a stop).
    expect(
      theApp()
        .containers()
        .find((c) => c.id === victim.id)?.status,
    ).toBe('exited')
    // Gone for good, so that compose's scale-down below picks a running replica.
    runChecked('docker', ['rm', victim.id])
  })

  it('compose stopping a cache replica (scale 2 → 1): SIGTERM revokes its lease, the key goes before the container exits', async () => {
    const before = running('cache')
    expect(before).toHaveLength(2)
    const keys = new Map(before.map((c) => [c.id, theApp().registeredKey(c.id)]))
    const deletions = await Deletions.open(theProbe())
    const kills = watchKillSignals(theApp().project)
    try {
      const scale = await theApp().composeRun(
        ['up', '--detach', '--no-deps', '--no-recreate', '--scale', 'cache=1', 'cache'],
        120_000,
      )
      expect(scale.code, scale.output).toBe(0)
      const term = await waitFor(
        'the SIGTERM event',
        () => kills.signals.some((s) => s.signal === '15' && keys.has(s.id)),
        10_000,
      ).then(() => kills.signals.find((s) => s.signal === '15' && keys.has(s.id))!)
      const key = keys.get(term.id)!
      await waitFor(`${key} to be deleted`, () => deletions.at.has(key), 5_000)
      const goneMs = deletions.at.get(key)! - term.at
      note(
        `compose scale-down (SIGTERM) → key gone ${goneMs} ms after the signal (${scale.ms} ms for the whole compose command)`,
      )
      // Revoked, not expired: the key went before the container exited (an expiry comes a TTL
      // after). How fast is bench/propagation's to measure.
      await waitFor(
        'the container to exit',
        () => kills.exits.some((e) => e.id === term.id),
        30_000,
      )
      const exitedAt = kills.exits.find((e) => e.id === term.id)!.at
      expect(deletions.at.get(key)!).toBeLessThanOrEqual(exitedAt)
      expect(await keyExists(key)).toBe(false)
      const survivor = [...keys.entries()].find(([id]) => id !== term.id)!
      expect(await keyExists(survivor[1])).toBe(true)
      expect(running('cache').map((c) => c.id)).toEqual([survivor[0]])
    } finally {
      kills.stop()
      await deletions.close()
    }
  })

  it('framework down: no container left, every key deleted before etcd stopped', async () => {
    const keys = Object.keys(await theProbe().entries())
    expect(keys).toHaveLength(2) // api and the last cache
    const deletions = await Deletions.open(theProbe())
    try {
      const down = await theApp().cli(['down'], 120_000)
      expect(down.code, down.output).toBe(0)
      note(`framework down: ${(down.ms / 1000).toFixed(1)} s`)
      expect(theApp().labelledContainerIds()).toEqual([])
      expect(keys.filter((key) => !deletions.at.has(key))).toEqual([])
      await expect(theProbe().entries()).rejects.toThrow()
    } finally {
      await deletions.close()
    }
  })
})
