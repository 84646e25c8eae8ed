import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { build } from 'esbuild'
import { type BrowserContext, chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { useEtcd } from '../support/etcd-fixture.js'
import { gatewayReady, spawnGateway } from '../support/gateway-process.js'
import { killAll, REPO_ROOT, type SpawnedInstance, testEnv } from '../support/instance.js'

const PAGE_DIR = resolve(import.meta.dirname, 'gateway-page')
const SCREENSHOT = resolve(REPO_ROOT, '.tmp/gateway-browser.png')
/** Debian's chromium (.ci/run installs it). */
const CHROMIUM = '/usr/bin/chromium'

const cluster = useEtcd('gateway-browser')
const gateways: SpawnedInstance[] = []
const pageServers: Server[] = []
let userDataDir: string
let browser: BrowserContext | undefined

/** Serves the page and its esbuild bundle on a free loopback port: one origin. */
async function servePage(bundle: string): Promise<string> {
  const html =
    '<!doctype html><meta charset="utf-8"><title>gateway</title>' +
    '<h1>through the gateway</h1><p id="result" data-state="pending">calling…</p>' +
    '<script type="module" src="/main.js"></script>'
  const server = createServer((req, res) => {
    const js = req.url === '/main.js'
    res.writeHead(200, { 'content-type': js ? 'text/javascript' : 'text/html' })
    res.end(js ? bundle : html)
  })
  pageServers.push(server)
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

beforeAll(() => {
  userDataDir = mkdtempSync(join(tmpdir(), 'framework-chromium-'))
})

afterAll(async () => {
  await browser?.close()
  await killAll(gateways)
  for (const server of pageServers) server.close()
  rmSync(userDataDir, { recursive: true, force: true })
})

describe('a browser app through the gateway', () => {
  it('the page’s code type-checks against AppRouter, and a call to a non-exposed procedure does not', () => {
    // not-exposed.ts holds such calls under @ts-expect-error: tsc fails if any of them compiles.
    const result = spawnSync(
      process.execPath,
      [resolve(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', PAGE_DIR],
      { cwd: REPO_ROOT, encoding: 'utf8', timeout: 120_000 },
    )
    expect(result.stdout + result.stderr).toBe('')
    expect(result.status).toBe(0)
  })

  it('a page bundled with esbuild, using stock @trpc/client, shows api.get in headless Chromium; another origin is refused', async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} missing: apt-get install -y chromium`).toBe(true)
    const namespace = cluster.namespace()
    const cache = cluster.spawn('cache', namespace)
    const api = cluster.spawn('api', namespace)
    await cache.waitForLog('registered in etcd', 60_000)
    await api.waitForLog('registered in etcd', 60_000)
    const { outputFiles } = await build({
      entryPoints: [join(PAGE_DIR, 'main.ts')],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      logLevel: 'silent',
    })
    const bundle = outputFiles[0]!.text
    const allowed = await servePage(bundle)
    const other = await servePage(bundle)
    const gateway = spawnGateway(
      { ...testEnv(cluster.etcd.endpoint, namespace), GATEWAY_TEST_ORIGINS: allowed },
      { args: ['--config', 'test/fixtures/gateway/browser-gateway.ts'] },
    )
    gateways.push(gateway)
    const gatewayUrl = (await gateway.waitForLog('listening', 60_000)).url as string
    await gatewayReady(gatewayUrl, 30_000)

    browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    })
    const open = async (origin: string) => {
      const page = await browser!.newPage()
      await page.goto(`${origin}/?gateway=${encodeURIComponent(gatewayUrl)}`)
      await page.waitForSelector('#result:not([data-state="pending"])', { timeout: 30_000 })
      return page
    }

    const page = await open(allowed)
    const text = await page.textContent('#result')
    expect(await page.getAttribute('#result', 'data-state'), text ?? '').toBe('ok')
    expect(text).toMatch(
      /^api\.get → hello from chromium \(hit: true, served by cache-[0-9a-f]+\)$/,
    )
    mkdirSync(resolve(REPO_ROOT, '.tmp'), { recursive: true })
    await page.screenshot({ path: SCREENSHOT })
    expect(existsSync(SCREENSHOT)).toBe(true)

    const refused = await open(other)
    expect(await refused.getAttribute('#result', 'data-state')).toBe('error')
    expect(await refused.textContent('#result')).toMatch(/^refused: /)
    // The gateway answered the other origin itself (403), before any service.
    const check = await fetch(`${gatewayUrl}/trpc/api.get?input=%7B%22key%22%3A%22browser%22%7D`, {
      headers: { origin: other },
    })
    expect(check.status).toBe(403)
  }, 180_000)
})
