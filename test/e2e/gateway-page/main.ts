import { createTRPCClient, httpBatchLink } from '@trpc/client'
import type { AppRouter } from './app-router.js'

/** A page that calls the system through the gateway named in its URL (`?gateway=<url>`). */
const gateway = new URLSearchParams(location.search).get('gateway') ?? ''
const client = createTRPCClient<AppRouter>({
  links: [httpBatchLink({ url: `${gateway}/trpc` })],
})
const result = document.getElementById('result') as HTMLElement

try {
  await client.api.put.mutate({ key: 'browser', value: 'hello from chromium' })
  const { value, hit, servedBy } = await client.api.get.query({ key: 'browser' })
  result.textContent = `api.get → ${value} (hit: ${hit}, served by ${servedBy})`
  result.dataset.state = 'ok'
} catch (err) {
  result.textContent = `refused: ${err instanceof Error ? err.message : String(err)}`
  result.dataset.state = 'error'
}
