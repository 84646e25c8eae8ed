import { spawn } from 'node:child_process'
import { resolve } from 'node:path'
import type { LoopTarget } from './call-loop.js'
import { useEtcd } from './etcd-fixture.js'
import { REPO_ROOT, SpawnedInstance } from './instance.js'
import { type Started, startRegistered } from './spawned-app.js'

/**
 * A peer in another language: clients/python-peer/peer.py (Python standard library only)
 * registers itself through etcd's JSON gateway as docs/registry-protocol.md says, and the
 * TypeScript fixture service `greet-relay` calls it through ctx.deps with types from
 * clients/python-peer/contract.ts.
 */

export const PEER_TTL = 2
const FIXTURE_APP = resolve(REPO_ROOT, 'test/fixtures/app')
const PEER = resolve(REPO_ROOT, 'clients/python-peer/peer.py')
const PYTHON = process.env.PYTHON ?? 'python3'

/** `greet-relay.hello`, answered with the Python instance that greeted. */
export const RELAY_HELLO: LoopTarget = {
  path: 'hello',
  input: (n) => ({ name: `w${n}` }),
  servedBy: (data, n) => {
    const answer = data as { message?: string; instance?: string } | undefined
    return answer?.message === `hello, w${n}` ? answer.instance : undefined
  },
}

// biome-ignore lint/suspicious/noExplicitAny: assertions walk the answer's JSON
export type Json = any

export async function getJson(url: string): Promise<{ status: number; body: Json }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) })
  return { status: response.status, body: await response.json() }
}

export function queryUrl(base: string, path: string, input: unknown): string {
  return `${base}/trpc/${path}?input=${encodeURIComponent(JSON.stringify(input))}`
}

/**
 * One etcd for the test file (TTL {@link PEER_TTL}), Python peers and greet-relay instances on it,
 * killed after each test.
 */
export function usePythonPeers() {
  const fixture = useEtcd('py', PEER_TTL)
  return {
    fixture,
    /** `python3 peer.py` on 127.0.0.1, an ephemeral port; its JSON log lines are parsed as the runtime's. */
    startPeer(namespace: string, env: Record<string, string> = {}): Promise<Started> {
      return startRegistered(
        (_role, ns) => {
          const child = spawn(PYTHON, [PEER], {
            cwd: REPO_ROOT,
            env: {
              ...process.env,
              ...fixture.env(ns),
              PORT: '0',
              PYTHONUNBUFFERED: '1',
              ...env,
            },
            stdio: ['ignore', 'pipe', 'pipe'],
          })
          return fixture.adopt(new SpawnedInstance(child))
        },
        'greeter',
        namespace,
      )
    },
    startRelay(namespace: string, env: Record<string, string> = {}): Promise<Started> {
      return startRegistered(
        (role, ns) => fixture.spawn(role, ns, { appRoot: FIXTURE_APP, env }),
        'greet-relay',
        namespace,
      )
    },
  }
}
