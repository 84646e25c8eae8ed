import { defineConfig } from 'vitest/config'

// `npm run test:compose`: framework dev on a real Docker engine (it installs and starts one if
// needed). Its files end in .compose.ts, so `npm test` (test/**/*.test.ts) never picks them up.
export default defineConfig({
  test: {
    include: ['test/e2e/compose/**/*.compose.ts'],
    // Image builds on the vfs storage driver are slow; each step has its own bound inside.
    testTimeout: 10 * 60_000,
    hookTimeout: 10 * 60_000,
    // One engine, one app: the steps run in order in one file, one file at a time.
    fileParallelism: false,
    reporters: ['default', ['json', { outputFile: '.tmp/vitest-compose-report.json' }]],
  },
})
