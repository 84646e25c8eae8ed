import { expect, it } from 'vitest'
import { useEtcd } from '../support/etcd-fixture.js'
import { waitFor } from '../support/wait.js'

// An instance reports each lifecycle step as the `event` field of its log line: `framework dev`
// follows instances by it, not by the wording of messages.

const fixture = useEtcd('lifecycle-events')

it('start → SIGTERM: every lifecycle step once, in order, each with its message', async () => {
  const instance = fixture.spawn('cache', fixture.namespace())
  const eventLines = () => instance.lines.filter((line) => typeof line.event === 'string')
  await waitFor('the registered event', () =>
    eventLines().some((line) => line.event === 'registered'),
  )
  instance.child.kill('SIGTERM')
  expect(await instance.exited).toBe(0)
  const expected = [
    ['starting', 'starting'],
    ['listening', 'listening'],
    ['registered', 'registered in etcd'],
    ['stopping', 'shutting down: revoking lease'],
    ['deregistered', 'lease revoked, record removed'],
    ['drained', 'drained in-flight requests'],
    ['stopped', 'stopped'],
  ]
  const lines = eventLines()
  // pino writes stdout asynchronously and flushes at exit, so the last lines can arrive out of
  // order: the order checked is that of the log calls, by each line's `time`.
  expect(lines.map((line) => [line.event, line.msg]).sort()).toEqual([...expected].sort())
  const timeOf = (event: string) => lines.find((line) => line.event === event)?.time as number
  for (let i = 1; i < expected.length; i++) {
    const [before, after] = [expected[i - 1]![0]!, expected[i]![0]!]
    expect(timeOf(before), `${before} before ${after}`).toBeLessThanOrEqual(timeOf(after))
  }
  const listening = lines.find((line) => line.event === 'listening')
  expect(listening?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
})
