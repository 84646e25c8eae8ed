import { createTRPCClient, httpBatchLink } from '@trpc/client'
import type { AppRouter } from './app-router.js'

// Type-checked, never run: what the browser may not call does not compile.
export async function notExposed(): Promise<void> {
  const client = createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: '/trpc' })] })
  // @ts-expect-error: cache exposes nothing
  await client.cache.get.query({ key: 'a' })
  // @ts-expect-error: api.get takes { key: string }
  await client.api.get.query({ key: 1 })
}
