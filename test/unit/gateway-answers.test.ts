import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { RemoteProcedureError } from '../../framework/client/call-errors.js'
import { callFailure } from '../../framework/gateway/answers.js'

describe("the gateway's answer to a service's error", () => {
  it("keeps the service's message, code and data, but not its stack trace", () => {
    const err = new RemoteProcedureError('api.get (instance api-1)', {
      message: 'boom',
      code: 'CONFLICT',
      httpStatus: 409,
      data: {
        code: 'CONFLICT',
        httpStatus: 409,
        stack: 'Error: boom\n    at secret.ts:1',
        why: 'x',
      },
    })
    const answer = callFailure(err, 'api.get', 'api', pino({ level: 'silent' }))
    expect(answer.status).toBe(409)
    const body = answer.body as { error: { message: string; data: Record<string, unknown> } }
    expect(body.error.data).toEqual({
      code: 'CONFLICT',
      httpStatus: 409,
      why: 'x',
      path: 'api.get',
    })
    expect(JSON.stringify(body)).not.toContain('secret.ts')
  })

  it('maps a code tRPC does not know to a 500-class code', () => {
    const err = new RemoteProcedureError('api.get', {
      message: 'odd',
      code: 'NOT_A_CODE',
      httpStatus: 500,
      data: undefined,
    })
    const body = callFailure(err, 'api.get', 'api', pino({ level: 'silent' })).body as {
      error: { data: { code: string } }
    }
    expect(body.error.data.code).toBe('INTERNAL_SERVER_ERROR')
  })
})
