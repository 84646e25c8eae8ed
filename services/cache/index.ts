import { z } from 'zod'
import { defineService, initService } from '../../framework/index.js'

const t = initService()

interface Entry {
  value: string
  /** Epoch ms after which the entry is gone; undefined = no expiry. */
  expiresAt: number | undefined
}

// One store per instance: instances of a role do not share state, which makes the instance
// that answered (`instance` in replies) visible to callers.
const store = new Map<string, Entry>()
const counters = { hits: 0, misses: 0 }

const key = z.string().min(1).max(256)
const value = z.string().max(64 * 1024)

function read(k: string): Entry | undefined {
  const entry = store.get(k)
  if (entry?.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
    store.delete(k)
    return undefined
  }
  return entry
}

export const router = t.router({
  get: t.procedure.input(z.object({ key })).query(({ input, ctx }) => {
    const entry = read(input.key)
    if (entry) counters.hits++
    else counters.misses++
    return { value: entry?.value ?? null, hit: entry !== undefined, instance: ctx.instance.id }
  }),
  set: t.procedure
    .input(
      z.object({ key, value, ttlSeconds: z.number().int().positive().max(31_536_000).optional() }),
    )
    .mutation(({ input, ctx }) => {
      store.set(input.key, {
        value: input.value,
        expiresAt:
          input.ttlSeconds === undefined ? undefined : Date.now() + input.ttlSeconds * 1000,
      })
      return { ok: true as const, instance: ctx.instance.id }
    }),
  del: t.procedure.input(z.object({ key })).mutation(({ input, ctx }) => {
    return { deleted: store.delete(input.key), instance: ctx.instance.id }
  }),
  stats: t.procedure.query(({ ctx }) => {
    for (const k of store.keys()) read(k)
    return { instance: ctx.instance.id, size: store.size, ...counters }
  }),
})

export default defineService({ role: 'cache', router, replicas: 3 })
