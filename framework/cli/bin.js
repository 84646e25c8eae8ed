#!/usr/bin/env node
// The CLI and the services it runs are TypeScript: load them through tsx's ESM hooks.
import { register } from 'tsx/esm/api'

register()
await import('./main.ts')
