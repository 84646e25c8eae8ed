import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type ImportGraph,
  roleSources,
  rolesAffectedBy,
} from '../../framework/cli/dev/import-graph.js'

let app: string
let graph: ImportGraph
const file = (path: string) => join(app, path)

function write(path: string, text: string) {
  mkdirSync(dirname(file(path)), { recursive: true })
  writeFileSync(file(path), text)
}

beforeAll(async () => {
  app = mkdtempSync(join(tmpdir(), 'framework-import-graph-'))
  write('package.json', '{ "name": "graph", "type": "module" }')
  write('tsconfig.json', '{ "compilerOptions": { "verbatimModuleSyntax": true } }')
  write('lib/format.ts', 'export const upper = (text: string) => text.toUpperCase()\n')
  write(
    'lib/greeting.ts',
    "import { upper } from './format.js'\nexport const greet = (name: string) => upper(name)\n",
  )
  write('lib/unused.ts', 'export const unused = 1\n')
  write(
    'services/alpha/index.ts',
    "import { defineService } from 'framework'\nimport { greet } from '../../lib/greeting.js'\nexport default defineService({ role: 'alpha', greet })\n",
  )
  write('services/beta/local.ts', 'export const local = 2\n')
  write(
    'services/beta/index.ts',
    "import type alpha from '../alpha/index.js'\nimport { local } from './local.js'\nexport type Alpha = typeof alpha\nexport default { role: 'beta', local }\n",
  )
  graph = new Map([
    ['alpha', await roleSources(app, 'alpha')],
    ['beta', await roleSources(app, 'beta')],
  ])
})

afterAll(() => rmSync(app, { recursive: true, force: true }))

describe('import graph of services', () => {
  it("holds each role's own files and the local modules it imports, transitively; no packages", () => {
    expect([...graph.get('alpha')!].sort()).toEqual(
      [file('lib/format.ts'), file('lib/greeting.ts'), file('services/alpha/index.ts')].sort(),
    )
  })

  it('a type-only import of another service is no edge', () => {
    expect([...graph.get('beta')!].sort()).toEqual(
      [file('services/beta/index.ts'), file('services/beta/local.ts')].sort(),
    )
  })

  it('a shared module restarts only the roles that import it', () => {
    expect(rolesAffectedBy(file('lib/format.ts'), app, graph)).toEqual(['alpha'])
    expect(rolesAffectedBy(file('lib/unused.ts'), app, graph)).toEqual([])
  })

  it('any file under services/<role> restarts that role, a new one too', () => {
    expect(rolesAffectedBy(file('services/beta/new-file.ts'), app, graph)).toEqual(['beta'])
    expect(rolesAffectedBy(file('services/alpha/index.ts'), app, graph)).toEqual(['alpha'])
  })

  it('package.json, the lockfile and tsconfig.json at the app root restart every role', () => {
    for (const name of ['package.json', 'package-lock.json', 'tsconfig.json']) {
      expect(rolesAffectedBy(file(name), app, graph)).toEqual(['alpha', 'beta'])
    }
    expect(rolesAffectedBy(file('lib/package.json'), app, graph)).toEqual([])
  })

  it('rejects while a file does not build (mid-edit)', async () => {
    write('services/gamma/index.ts', 'export default {\n')
    await expect(roleSources(app, 'gamma')).rejects.toThrow()
  })
})
