import { inputJsonSchema, type JsonSchema, toJsonSchema } from '../service/input-schema.js'
import type { ExposedProcedure, ExposedProcedures } from './exposed-procedures.js'
import { API_PREFIX } from './routes.js'

/**
 * The OpenAPI 3.1 document of every exposed procedure at its plain JSON route
 * (`/api/<role>/<path>`): a query is `GET` with its input as the JSON `input` query parameter (or
 * `POST` with it as the body), a mutation is `POST`. Schemas come from zod 4's JSON Schema
 * conversion of each procedure's input (and output, when it declares one); a schema zod cannot
 * convert is left open (`{}`), described as such.
 */
export function openApiDocument(
  procedures: ExposedProcedures,
  info: { title: string; version: string },
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const procedure of procedures.list()) {
    const route = `${API_PREFIX}${procedure.role}/${procedure.path.split('.').join('/')}`
    const input = inputSchema(procedure)
    const required = input !== undefined && !acceptsUndefined(procedure)
    const responses = {
      '200': {
        description: `${procedure.name} succeeded: its output`,
        content: { 'application/json': { schema: outputSchema(procedure) } },
      },
      default: { $ref: '#/components/responses/Error' },
    }
    const body =
      input === undefined
        ? undefined
        : { required, content: { 'application/json': { schema: input } } }
    const operation = (method: 'get' | 'post') => ({
      operationId: procedure.kind === 'query' ? `${procedure.name}.${method}` : procedure.name,
      summary: `${procedure.kind} ${procedure.path} of role ${procedure.role}`,
      tags: [procedure.role],
      ...(method === 'get' && input !== undefined
        ? {
            parameters: [
              {
                name: 'input',
                in: 'query',
                required,
                description: 'the input as JSON (URL-encoded)',
                content: { 'application/json': { schema: input } },
              },
            ],
          }
        : {}),
      ...(method === 'post' && body ? { requestBody: body } : {}),
      responses,
    })
    paths[route] =
      procedure.kind === 'query'
        ? { get: operation('get'), post: operation('post') }
        : { post: operation('post') }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: info.title,
      version: info.version,
      description:
        'Procedures the services expose through the gateway. tRPC clients use /trpc/<role>.<path> instead.',
    },
    paths,
    components: {
      schemas: { Error: ERROR_SCHEMA },
      responses: {
        Error: {
          description:
            'tRPC error shape: 400 invalid input (data.issues), 401, 403 origin, 404 not exposed, 413, 429 (Retry-After), 503 no live instance, 504 deadline',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
        },
      },
    },
  }
}

const ERROR_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['message', 'code', 'data'],
      properties: {
        message: { type: 'string' },
        code: { type: 'integer', description: 'JSON-RPC 2.0 code' },
        data: {
          type: 'object',
          required: ['code', 'httpStatus'],
          properties: {
            code: { type: 'string', description: "tRPC's code, e.g. BAD_REQUEST" },
            httpStatus: { type: 'integer' },
            path: { type: 'string' },
            frameworkCode: { type: 'string' },
            issues: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  path: { type: 'array', items: { type: ['string', 'integer'] } },
                  message: { type: 'string' },
                  code: { type: 'string' },
                },
              },
            },
          },
        },
      },
    },
  },
}

function inputSchema(procedure: ExposedProcedure): JsonSchema | undefined {
  return inputJsonSchema(procedure.inputs)
}

function outputSchema(procedure: ExposedProcedure): JsonSchema {
  return procedure.output === undefined ? {} : toJsonSchema(procedure.output, 'output')
}

/** Whether the procedure takes no input too (its first parser accepts undefined). */
function acceptsUndefined(procedure: ExposedProcedure): boolean {
  const parser = procedure.inputs[0] as { safeParse?: (value: unknown) => { success: boolean } }
  try {
    return typeof parser?.safeParse === 'function' && parser.safeParse(undefined).success
  } catch {
    return false
  }
}
