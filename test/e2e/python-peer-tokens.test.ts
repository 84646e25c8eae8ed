import { execFile } from 'node:child_process'
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { TOKEN_HEADER } from '../../framework/protocol/call-token.js'
import { mintCallToken } from '../../framework/security/call-token.js'
import { REPO_ROOT } from '../support/instance.js'
import { usePythonPeers } from '../support/python-peer.js'
import { raw } from '../support/raw-request.js'

// Call tokens across languages: the Python peer (clients/python-peer/peer.py, stdlib hmac) checks
// the tokens the TypeScript client mints with jose, and mints tokens a TypeScript service accepts.

const py = usePythonPeers()
const SECRET = 's'.repeat(16) + 'python-and-typescript-share-it'
const PYTHON = process.env.PYTHON ?? 'python3'

function secretFile(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'py-tokens-')), 'secret')
  writeFileSync(file, `${SECRET}\n`)
  chmodSync(file, 0o600)
  return file
}

async function pythonMint(namespace: string, audience: string, caller: string): Promise<string> {
  const { stdout } = await promisify(execFile)(
    PYTHON,
    [resolve(REPO_ROOT, 'clients/python-peer/peer.py'), 'mint', audience, caller],
    { env: { ...process.env, FRAMEWORK_SECRET: SECRET, FRAMEWORK_NAMESPACE: namespace } },
  )
  return stdout.trim()
}

const greet = `/_rpc/greet?input=${encodeURIComponent(JSON.stringify({ name: 'Ada' }))}`
const hello = `/_rpc/hello?input=${encodeURIComponent(JSON.stringify({ name: 'Ada' }))}`

describe('call tokens with the Python peer (real etcd, real processes)', () => {
  it('the peer accepts tokens minted by the TypeScript client and refuses bad ones (401)', async () => {
    const namespace = py.fixture.namespace()
    const peer = await py.startPeer(namespace, { FRAMEWORK_SECRET_FILE: secretFile() })
    const mint = (options: { secret?: string; audience?: string; namespace?: string }) =>
      mintCallToken({
        secret: new TextEncoder().encode(options.secret ?? SECRET),
        caller: 'tester',
        audience: options.audience ?? 'greeter',
        namespace: options.namespace ?? namespace,
      })
    const ok = await raw(peer.url, 'GET', greet, undefined, { [TOKEN_HEADER]: await mint({}) })
    expect(ok.status, ok.body).toBe(200)
    expect(JSON.parse(ok.body).result.data.message).toBe('hello, Ada')
    const refused: Record<string, Record<string, string>> = {
      'no token': {},
      'forged signature': { [TOKEN_HEADER]: await mint({ secret: 'x'.repeat(40) }) },
      'another audience': { [TOKEN_HEADER]: await mint({ audience: 'cache' }) },
      'another namespace': { [TOKEN_HEADER]: await mint({ namespace: 'elsewhere' }) },
    }
    for (const [what, headers] of Object.entries(refused)) {
      const answer = await raw(peer.url, 'GET', greet, undefined, headers)
      expect(answer.status, what).toBe(401)
      expect(JSON.parse(answer.body).error.data.code, what).toBe('UNAUTHORIZED')
    }
    expect((await raw(peer.url, 'GET', '/readyz')).status).toBe(200)
  })

  it('greet-relay calls the peer with its own tokens; a token the peer mints opens greet-relay', async () => {
    const namespace = py.fixture.namespace()
    const env = { FRAMEWORK_SECRET_FILE: secretFile() }
    await py.startPeer(namespace, env)
    const relay = await py.startRelay(namespace, env)
    const token = await pythonMint(namespace, 'greet-relay', 'py-script')
    const answer = await raw(relay.url, 'GET', hello, undefined, { [TOKEN_HEADER]: token })
    expect(answer.status, answer.body).toBe(200)
    expect(JSON.parse(answer.body).result.data.message).toBe('hello, Ada')
    const none = await raw(relay.url, 'GET', hello)
    expect(none.status).toBe(401)
  })
})
