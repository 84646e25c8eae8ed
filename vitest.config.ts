import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'framework/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests spawn etcd and service processes; two cores run two files at a time.
    maxWorkers: 2,
    // The package is built and packed once, for the tests of apps that install it.
    globalSetup: ['test/support/framework-package.ts'],
    typecheck: { enabled: true, include: ['test/**/*.test-d.ts'] },
    // The JSON report lets .ci/run print a plain "N passed, N failed" closing line. Reliability
    // tests record a row per fault; the fault reporter ends the run with them as one table.
    reporters: [
      'default',
      ['json', { outputFile: '.tmp/vitest-report.json' }],
      './test/support/fault-report.ts',
    ],
  },
})
