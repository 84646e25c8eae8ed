import { describe, expect, it } from 'vitest'
import { ConfigError } from '../../framework/config/config-error.js'
import {
  checkTracingEnv,
  startTracing,
  tracingRequested,
} from '../../framework/telemetry/tracing.js'

const ENDPOINT = 'http://127.0.0.1:4318'

describe('tracing from the environment', () => {
  it('is on with an OTLP endpoint (general or traces), unless disabled', () => {
    expect(tracingRequested({})).toBe(false)
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: ' ' })).toBe(false)
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: ENDPOINT })).toBe(true)
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${ENDPOINT}/v1/traces` })).toBe(
      true,
    )
    expect(
      tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: ENDPOINT, OTEL_SDK_DISABLED: 'TRUE' }),
    ).toBe(false)
    expect(
      tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: ENDPOINT, OTEL_TRACES_EXPORTER: 'none' }),
    ).toBe(false)
  })

  it('without an endpoint nothing starts', async () => {
    expect(await startTracing({}, { role: 'r', instance: 'r-1' })).toBeUndefined()
  })

  it('accepts the standard settings', () => {
    expect(() =>
      checkTracingEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: ENDPOINT,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '0.01',
      }),
    ).not.toThrow()
  })

  it('refuses what the SDK would misread silently, naming the variable', () => {
    const refused = (env: NodeJS.ProcessEnv) => {
      try {
        checkTracingEnv(env)
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError)
        return (err as ConfigError).message
      }
      return 'accepted'
    }
    expect(refused({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toMatch(
      /^OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318" is invalid: an http\(s\) URL/,
    )
    expect(refused({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'not a url' })).toMatch(
      /^OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=/,
    )
    expect(refused({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toMatch(/http\/json/)
    expect(refused({ OTEL_TRACES_SAMPLER: 'sometimes' })).toMatch(
      /^OTEL_TRACES_SAMPLER="sometimes"/,
    )
    expect(
      refused({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1.5' }),
    ).toMatch(/^OTEL_TRACES_SAMPLER_ARG="1.5" is invalid/)
  })
})
