import { z } from 'zod'
import { defineService, initService } from '../../framework/index.js'

/**
 * The contract of the Python peer (`clients/python-peer/peer.py`), role `greeter`. Nothing here
 * runs: the peer is a Python process that registers itself in etcd. This definition only gives
 * TypeScript callers their types, through a type-only import:
 *
 * ```ts
 * import type greeter from '../../clients/python-peer/contract.js'
 * const t = initService<{ greeter: typeof greeter }>()
 * // …then `await ctx.deps.greeter.greet({ name })` in a procedure, with deps: { greeter: true }
 * ```
 *
 * Keep it in step with peer.py: `greet` is a query; its input is validated there exactly as this
 * zod schema says (1–100 UTF-16 code units), and its output has this shape.
 */
const t = initService()

export const greetInput = z.object({ name: z.string().min(1).max(100) })

export interface GreetOutput {
  /** `hello, <name>` */
  message: string
  /** The id of the peer instance that answered (its phone book id, e.g. `greeter-1a2b3c4d5e`). */
  instance: string
}

export const router = t.router({
  greet: t.procedure.input(greetInput).query((): GreetOutput => {
    throw new Error(
      "greeter's procedures are served by clients/python-peer/peer.py; this contract only carries types",
    )
  }),
})

export default defineService({ role: 'greeter', router })
