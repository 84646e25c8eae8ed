import { describe, expect, it } from 'vitest'
import { appAnswers, parseServiceFlag } from '../../framework/cli/ask/app-questions.js'
import { Questions } from '../../framework/cli/ask/questions.js'
import { serviceAnswers } from '../../framework/cli/ask/service-questions.js'
import { parseBalancerFlag, renderService } from '../../framework/cli/generate-service.js'
import { lastLine } from '../../framework/cli/progress.js'

// Without a terminal: what the flags say, defaults for what they leave out, and an error naming
// the flag for a missing answer; never a prompt.
const noTerminal = new Questions(false, 'framework test')

describe('answers from flags', () => {
  it('parses --balancer into a named balancer or a hash field, refusing anything else', () => {
    expect(parseBalancerFlag('cache=round-robin')).toEqual(['cache', { name: 'round-robin' }])
    expect(parseBalancerFlag('cache=hash:key')).toEqual(['cache', { hashField: 'key' }])
    expect(() => parseBalancerFlag('cache=fastest')).toThrow(/unknown balancer 'fastest'/)
    expect(() => parseBalancerFlag('cache=hash:1x')).toThrow(/not an input field name/)
    expect(() => parseBalancerFlag('cache')).toThrow(/--balancer cache is invalid/)
  })

  it('parses --service role=deps', () => {
    expect(parseServiceFlag('orders=inventory, hello')).toMatchObject({
      role: 'orders',
      deps: ['inventory', 'hello'],
    })
    expect(parseServiceFlag('hello')).toMatchObject({ role: 'hello', deps: [] })
  })

  it('a missing role or directory names its flag; given ones are never asked', async () => {
    await expect(
      serviceAnswers(undefined, { balancer: [] }, '/nowhere', [], noTerminal),
    ).rejects.toThrow(/missing <role> and no terminal to ask on; pass it/)
    await expect(appAnswers(undefined, { service: [] }, noTerminal)).rejects.toThrow(
      /missing <dir> and no terminal to ask on/,
    )
    const plan = await serviceAnswers(
      'report',
      { deps: 'orders', balancer: ['orders=hash:id'], expose: true },
      '/nowhere',
      ['orders'],
      noTerminal,
    )
    expect(plan).toEqual({
      role: 'report',
      deps: ['orders'],
      balancers: { orders: { hashField: 'id' } },
      expose: true,
      port: undefined,
    })
    const app = await appAnswers('shop', { service: ['a', 'b=a'], dev: 'local' }, noTerminal)
    expect(app.services.map((service) => [service.role, service.deps])).toEqual([
      ['a', []],
      ['b', ['a']],
    ])
    await expect(appAnswers('shop', { service: [], dev: 'podman' }, noTerminal)).rejects.toThrow(
      /--dev podman is invalid/,
    )
  })

  it('renders a hash balancer, a named one and expose into the service definition', () => {
    const [[, source]] = renderService({
      role: 'report',
      deps: ['orders', 'order-api'],
      balancers: { orders: { hashField: 'id' }, 'order-api': { name: 'least-load' } },
      expose: true,
      port: undefined,
    }) as [[string, string]]
    expect(source).toContain("?.['id']")
    expect(source).toContain("'order-api': { balancer: 'least-load' }")
    expect(source).toContain('expose: true')
  })
})

describe('progress lines', () => {
  it('shows the last non-empty line of output, escapes stripped, cut to the width', () => {
    expect(lastLine('one\n\u001b[32mtwo\u001b[0m\r\n\n', 80)).toBe('two')
    expect(lastLine('#5 [build 3/7] RUN npm ci --omit=dev', 14)).toBe('#5 [build 3/7]')
    expect(lastLine('\n\n', 80)).toBeUndefined()
  })
})
