import type { GatewayRouter } from '../../../framework/index.js'
// Type-only: the browser bundle carries none of the services' code.
import type api from '../../../services/api/index.js'
import type cache from '../../../services/cache/index.js'

/** The system as the browser sees it through the gateway: api's exposed procedures only. */
export type AppRouter = GatewayRouter<{ api: typeof api; cache: typeof cache }>
