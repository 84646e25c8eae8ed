#!/usr/bin/env node
// Installed from the package, the compiled main.js sits beside this file and runs on plain node.
// In the framework's own repo the CLI is TypeScript (main.ts): loaded through tsx's ESM hooks.
import { existsSync } from 'node:fs'

if (existsSync(new URL('./main.js', import.meta.url))) {
  await import('./main.js')
} else {
  const { register } = await import('tsx/esm/api')
  register()
  // Commands that load service code see that TypeScript already loads (typescript-loader.ts).
  globalThis[Symbol.for('framework.tsx')] = true
  await import('./main.ts')
}
