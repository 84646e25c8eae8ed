import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { type BrowserContext, chromium } from 'playwright-core'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { freePort } from '../../framework/cli/free-port.js'
import { connect } from '../../framework/client/connect.js'
import { parseRecord, servicesPrefix } from '../../framework/registry/record.js'
import type api from '../../services/api/index.js'
import { useEtcd } from '../support/etcd-fixture.js'
import { alive, CLI, REPO_ROOT, SpawnedInstance } from '../support/instance.js'
import { waitFor } from '../support/wait.js'

// `framework dev --local` on the example app (3 cache, 1 api) against the test's etcd, its
// dashboard driven in headless Chromium: the topology follows a kill -9 without a reload, a call
// through discovery shows up as a trace of two services, and the call form answers.

/** Debian's chromium (.ci/run installs it). */
const CHROMIUM = '/usr/bin/chromium'
const TTL_SECONDS = 2
const SHOTS = resolve(REPO_ROOT, '.tmp')

const fixture = useEtcd('dashboard', TTL_SECONDS)
let userDataDir: string
let browser: BrowserContext | undefined
let dev: SpawnedInstance | undefined

beforeAll(() => {
  userDataDir = mkdtempSync(join(tmpdir(), 'framework-dashboard-chromium-'))
  mkdirSync(SHOTS, { recursive: true })
})

afterAll(async () => {
  await browser?.close()
  // Ctrl-C first: dev stops its instances and gateway itself; SIGKILL only if that hangs.
  if (dev && dev.child.exitCode === null && dev.child.signalCode === null) {
    dev.child.kill('SIGINT')
    await Promise.race([dev.exited, new Promise((resolve) => setTimeout(resolve, 30_000))])
  }
  await dev?.kill('SIGKILL')
  rmSync(userDataDir, { recursive: true, force: true })
}, 60_000)

/** The namespace's phone book records. */
async function records(namespace: string) {
  const entries = await fixture.probe.client.getAll().prefix(servicesPrefix(namespace)).strings()
  return Object.entries(entries).flatMap(([key, value]) => {
    const parsed = parseRecord(key, value)
    return parsed.ok ? [parsed.record] : []
  })
}

it('shows the instances live, a trace of api.get across two services, and answers the call form', async () => {
  expect(existsSync(CHROMIUM), `${CHROMIUM} missing: apt-get install -y chromium`).toBe(true)
  const namespace = fixture.namespace()
  dev = new SpawnedInstance(
    spawn(process.execPath, [CLI, 'dev', '--local', '--no-watch'], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        ...fixture.env(namespace),
        GATEWAY_PORT: String(await freePort()),
        NO_COLOR: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
  const output = () => dev!.stderr
  // The URL is printed with the readiness table, once every instance registered.
  let url = ''
  await waitFor(
    'the readiness table with the dashboard URL',
    () => {
      url =
        /^framework dashboard at (http:\/\/127\.0\.0\.1:\d+\/): topology/m.exec(output())?.[1] ?? ''
      return url !== ''
    },
    120_000,
    200,
  )
  expect(output()).toMatch(/all 4 instances registered/)

  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
  })
  const page = await browser.newPage()
  await page.goto(url)
  await page.waitForSelector('[data-role="cache"][data-count="3"]', { timeout: 30_000 })
  await page.waitForSelector('[data-role="api"][data-count="1"]', { timeout: 30_000 })
  await page.waitForSelector('#connection[data-state="open"]', { timeout: 30_000 })
  await page.screenshot({ path: join(SHOTS, 'dashboard-topology.png'), fullPage: true })
  // The same document throughout: a reload would lose this.
  await page.evaluate('window.loadedOnce = 1')

  // kill -9 of one cache instance, found by the pid in its phone book record.
  const caches = (await records(namespace)).filter((record) => record.role === 'cache')
  expect(caches).toHaveLength(3)
  const victim = caches[0]!
  expect(alive(victim.pid)).toBe(true)
  process.kill(victim.pid, 'SIGKILL')
  const killedAt = Date.now()
  await page.waitForFunction(
    'document.querySelector(\'[data-role="cache"]\')?.getAttribute("data-count") === "2"',
    undefined,
    { timeout: 30_000, polling: 50 },
  )
  const shownAfterMs = Date.now() - killedAt
  expect(
    shownAfterMs,
    `2 cache instances shown ${shownAfterMs} ms after kill -9 (TTL ${TTL_SECONDS} s)`,
  ).toBeLessThanOrEqual((TTL_SECONDS + 1) * 1000)
  expect(await page.evaluate('window.loadedOnce')).toBe(1)
  expect(await page.locator(`[data-role="cache"] .instance[data-id="${victim.id}"]`).count()).toBe(
    0,
  )
  expect(await page.getAttribute('[data-role="cache"]', 'data-count')).toBe('2')

  // api.get through discovery (connect(), which starts no trace: api's SERVER span is the root).
  const connection = connect<{ api: typeof api }>({
    deps: { api: true },
    etcdEndpoints: fixture.etcd.endpoint,
    namespace,
  })
  try {
    expect(await connection.deps.api.get({ key: 'dashboard' })).toMatchObject({ hit: false })
  } finally {
    await connection.close()
  }
  const row = page.locator('.trace-row[data-name="api api/get"][data-services="api,cache"]').first()
  await row.waitFor({ timeout: 30_000 })
  await row.click()
  await page.waitForSelector('#waterfall .span-row[data-service="cache"]', { timeout: 10_000 })
  const spans = await page.$$eval('#waterfall .span-row', (rows) =>
    rows.map((row) => ({
      service: row.getAttribute('data-service'),
      depth: row.getAttribute('data-depth'),
      text: row.textContent,
    })),
  )
  // api SERVER → api CLIENT (cache/get) → cache SERVER, nested by parent.
  expect(spans.map(({ service, depth }) => `${depth}:${service}`)).toEqual([
    '0:api',
    '1:api',
    '2:cache',
  ])
  expect(spans[0]!.text).toMatch(/api\/get \(server\)/)
  expect(spans[1]!.text).toMatch(/cache\/get \(client\)/)
  expect(spans[2]!.text).toMatch(/cache\/get \(server\)/)
  await page.screenshot({ path: join(SHOTS, 'dashboard-trace.png'), fullPage: true })

  // The call form: api.get, its schema shown, through discovery.
  await page.selectOption('#call-target', 'api.get')
  expect(JSON.parse((await page.textContent('#call-schema')) ?? '')).toMatchObject({
    type: 'object',
    required: ['key'],
  })
  await page.fill('#call-input', '{"key":"from-the-form"}')
  await page.click('#call-submit')
  await page.waitForSelector('#call-result:is([data-state="ok"], [data-state="error"])', {
    timeout: 30_000,
  })
  const result = (await page.textContent('#call-result')) ?? ''
  expect(await page.getAttribute('#call-result', 'data-state'), result).toBe('ok')
  expect(result).toMatch(/"servedBy": "cache-[0-9a-f]+"/)
  await page.locator('#call-section').scrollIntoViewIfNeeded()
  await page.screenshot({ path: join(SHOTS, 'dashboard-call.png'), fullPage: true })

  dev.child.kill('SIGINT')
  expect(await dev.exited).toBe(0)
  expect(await records(namespace)).toEqual([])
  console.log(`dashboard showed the kill -9 after ${shownAfterMs} ms (TTL ${TTL_SECONDS} s)`)
}, 240_000)
