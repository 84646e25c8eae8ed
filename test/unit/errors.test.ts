import { TRPCError } from '@trpc/server'
import { describe, expect, it, vi } from 'vitest'
import { CliError } from '../../framework/cli/cli-error.js'
import { DependencyCallError, RemoteProcedureError } from '../../framework/client/call-errors.js'
import {
  ConfigError,
  DependencyWaitError,
  defineService,
  ERROR_CODES,
  FAILURE_CODES,
  FrameworkError,
  frameworkErrorCode,
  InvalidRoleError,
  initService,
  ServiceDefinitionError,
} from '../../framework/index.js'
import { exitCodeOf } from '../../framework/internal/errors.js'
import { ServiceModuleError } from '../../framework/runtime/service-module.js'

/** An error as another copy of the framework (a second install) makes it: same brand, other class. */
function fromAnotherCopy(code: string, base: Error = new Error('elsewhere')): Error {
  return Object.assign(base, { code, [Symbol.for('framework.error.code')]: code })
}

describe('error codes', () => {
  it('every code is FRAMEWORK_ERR_*, with exit 2 for input to fix and 1 for failures', () => {
    for (const [code, entry] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^FRAMEWORK_ERR_[A-Z_]+$/)
      expect([1, 2]).toContain(entry.exitCode)
    }
    expect(ERROR_CODES.FRAMEWORK_ERR_BAD_CONFIG.exitCode).toBe(2)
    expect(ERROR_CODES.FRAMEWORK_ERR_BAD_SERVICE.exitCode).toBe(2)
    expect(ERROR_CODES.FRAMEWORK_ERR_COMMAND_FAILED.exitCode).toBe(1)
  })

  it('reserves the hash balancer codes: a bad key is BAD_REQUEST, an unknown balancer exits 2', () => {
    expect(ERROR_CODES.FRAMEWORK_ERR_BAD_HASH_KEY).toEqual({ exitCode: 1, trpc: 'BAD_REQUEST' })
    expect(ERROR_CODES.FRAMEWORK_ERR_BAD_BALANCER.exitCode).toBe(2)
    expect(new ServiceDefinitionError('x', 'FRAMEWORK_ERR_BAD_BALANCER')).toBeInstanceOf(
      ServiceDefinitionError,
    )
  })

  it('each error class carries its code and exits as the table says', () => {
    const cases: [Error, string, number][] = [
      [new ConfigError('PORT', 'x', 'a port'), 'FRAMEWORK_ERR_BAD_CONFIG', 2],
      [new InvalidRoleError('Bad', 'here'), 'FRAMEWORK_ERR_BAD_ROLE', 2],
      [new ServiceModuleError('no module'), 'FRAMEWORK_ERR_SERVICE_MODULE', 2],
      [new CliError('bad flag', 'FRAMEWORK_ERR_USAGE'), 'FRAMEWORK_ERR_USAGE', 2],
      [new CliError('npm failed'), 'FRAMEWORK_ERR_COMMAND_FAILED', 1],
      [new DependencyWaitError(['cache'], 'none'), 'FRAMEWORK_ERR_DEPS_UNAVAILABLE', 1],
      [new DependencyCallError('no-instance', 'none'), 'FRAMEWORK_ERR_NO_INSTANCE', 1],
      [new Error('plain'), 'none', 1],
    ]
    for (const [error, code, exitCode] of cases) {
      expect(frameworkErrorCode(error) ?? 'none', error.message).toBe(code)
      expect(exitCodeOf(error), error.message).toBe(exitCode)
    }
  })

  it('a bad defineService throws ServiceDefinitionError (exit 2)', () => {
    const router = initService().router({})
    for (const spec of [
      { role: 'a', router, replicas: 0 },
      { role: 'a', router, port: 0 },
      { role: 'a', router, deps: { a: true } },
    ]) {
      let thrown: unknown
      try {
        defineService(spec as Parameters<typeof defineService>[0])
      } catch (err) {
        thrown = err
      }
      expect(thrown).toBeInstanceOf(ServiceDefinitionError)
      expect((thrown as ServiceDefinitionError).code).toBe('FRAMEWORK_ERR_BAD_SERVICE')
      expect(exitCodeOf(thrown)).toBe(2)
    }
  })

  it('instanceof checks the brand: errors of another copy match their class and no other', () => {
    const config = fromAnotherCopy('FRAMEWORK_ERR_BAD_CONFIG')
    expect(config).toBeInstanceOf(FrameworkError)
    expect(config).toBeInstanceOf(ConfigError)
    expect(config).not.toBeInstanceOf(CliError)
    expect(exitCodeOf(config)).toBe(2)
    expect(fromAnotherCopy('FRAMEWORK_ERR_ETCD_UNREACHABLE')).toBeInstanceOf(CliError)
    expect(new Error('plain')).not.toBeInstanceOf(FrameworkError)
    expect(Object.assign(new Error('x'), { code: 'FRAMEWORK_ERR_BAD_CONFIG' })).not.toBeInstanceOf(
      ConfigError,
    )
  })

  it("an error made by a second loaded copy of the framework matches this copy's classes", async () => {
    vi.resetModules()
    const copy = await import('../../framework/index.js')
    expect(copy.ConfigError).not.toBe(ConfigError)
    const error = new copy.ConfigError('PORT', 'x', 'a port')
    expect(error).toBeInstanceOf(ConfigError)
    expect(error).toBeInstanceOf(FrameworkError)
    expect(error).not.toBeInstanceOf(ServiceDefinitionError)
    expect(new copy.DependencyCallError('aborted', 'gone')).toBeInstanceOf(DependencyCallError)
  })

  it('call errors stay TRPCErrors with tRPC codes from the table, and carry the stable code', () => {
    const error = new DependencyCallError('timeout', 'too slow')
    expect(error).toBeInstanceOf(TRPCError)
    expect(error.code).toBe('TIMEOUT')
    expect(error.frameworkCode).toBe('FRAMEWORK_ERR_TIMEOUT')
    // Its `code` is tRPC's, so it is not a FrameworkError (whose `code` is the stable one).
    expect(error).not.toBeInstanceOf(FrameworkError)
    // A TRPCError of another copy: tRPC's code, the stable code on the brand only.
    const copy = Object.assign(new TRPCError({ code: 'SERVICE_UNAVAILABLE' }), {
      [Symbol.for('framework.error.code')]: 'FRAMEWORK_ERR_NO_INSTANCE',
    })
    expect(copy).toBeInstanceOf(DependencyCallError)
    expect(copy).not.toBeInstanceOf(RemoteProcedureError)
    const remote = new RemoteProcedureError('cache.get', {
      message: 'nope',
      code: 'NOT_FOUND',
      httpStatus: 404,
      data: {},
    })
    expect(remote.code).toBe('NOT_FOUND')
    expect(frameworkErrorCode(remote)).toBe('FRAMEWORK_ERR_REMOTE')
    expect(FAILURE_CODES).toEqual({
      'no-instance': 'SERVICE_UNAVAILABLE',
      'phone-book-unreachable': 'SERVICE_UNAVAILABLE',
      'unknown-procedure': 'NOT_FOUND',
      unreachable: 'BAD_GATEWAY',
      timeout: 'TIMEOUT',
      aborted: 'CLIENT_CLOSED_REQUEST',
      'bad-hash-key': 'BAD_REQUEST',
      saturated: 'SERVICE_UNAVAILABLE',
    })
  })
})
