import { expect, it } from 'vitest'
import { useEtcd } from '../support/etcd-fixture.js'
import { waitFor } from '../support/wait.js'

// An instance reports each lifecycle step as the `event` field of its log line: `framework dev`
// follows instances by it, not by the wording of messages.

const fixture = useEtcd('lifecycle-events')

it('start → SIGTERM: every lifecycle step once, in order, each with its message', async () => {
  const instance = fixture.spawn('cache', fixture.namespace())
  const events = () =>
    instance.lines
      .filter((line) => typeof line.event === 'string')
      .map((line) => [line.event, line.msg])
  await waitFor('the registered event', () => events().some(([event]) => event === 'registered'))
  instance.child.kill('SIGTERM')
  expect(await instance.exited).toBe(0)
  expect(events()).toEqual([
    ['starting', 'starting'],
    ['listening', 'listening'],
    ['registered', 'registered in etcd'],
    ['stopping', 'shutting down: revoking lease'],
    ['deregistered', 'lease revoked, record removed'],
    ['drained', 'drained in-flight requests'],
    ['stopped', 'stopped'],
  ])
  const listening = instance.lines.find((line) => line.event === 'listening')
  expect(listening?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
})
