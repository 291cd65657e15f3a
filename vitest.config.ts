import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Integration tests start WASM PostgreSQL instances and child processes; two cores.
    maxWorkers: 2,
    globalSetup: ['test/helpers/global-setup.ts'],
  },
})
