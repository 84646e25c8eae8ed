import type { InputIssue } from '../service/errors.js'

/** The Standard Schema interface zod 4, valibot and arktype implement (standardschema.dev). */
interface StandardSchema {
  '~standard': {
    validate(value: unknown): StandardResult | Promise<StandardResult>
  }
}

type StandardResult =
  | { value: unknown; issues?: undefined }
  | {
      issues: readonly {
        message: string
        path?: readonly (PropertyKey | { key: PropertyKey })[]
        code?: unknown
      }[]
    }

function isStandardSchema(parser: unknown): parser is StandardSchema {
  return (
    (typeof parser === 'object' || typeof parser === 'function') &&
    parser !== null &&
    typeof (parser as Partial<StandardSchema>)['~standard']?.validate === 'function'
  )
}

/**
 * The input's problems against a procedure's input parsers, checked at the edge so a call with
 * wrong types is never forwarded; undefined when it passes. Parsers that are not Standard
 * Schemas (a plain function, yup) are left to the service, which checks every input anyway.
 */
export async function inputIssues(
  parsers: readonly unknown[],
  input: unknown,
): Promise<InputIssue[] | undefined> {
  let issues: InputIssue[] | undefined
  for (const parser of parsers) {
    if (!isStandardSchema(parser)) continue
    let result = parser['~standard'].validate(input)
    if (result instanceof Promise) result = await result
    if (!result.issues) continue
    issues ??= []
    for (const issue of result.issues) {
      issues.push({
        path: (issue.path ?? []).map((segment) => {
          const key = typeof segment === 'object' && segment !== null ? segment.key : segment
          return typeof key === 'number' ? key : String(key)
        }),
        message: issue.message,
        code: typeof issue.code === 'string' ? issue.code : 'invalid',
      })
    }
  }
  return issues
}
