import { configDefaults, defineConfig } from 'vitest/config'

// test/server needs a PostgreSQL server (the server tier), test/docker the docker/postgres image
// as that server. PGML_KIT_TEST_SERVER=skip leaves both out; a PGML_KIT_TEST_DATABASE_URL server
// leaves test/docker out. Any other run without the server they need fails (test/helpers/targets.ts).
const exclude: string[] = [...configDefaults.exclude]
if (process.env.PGML_KIT_TEST_SERVER === 'skip') exclude.push('test/server/**', 'test/docker/**')
else if (process.env.PGML_KIT_TEST_DATABASE_URL) exclude.push('test/docker/**')

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Integration tests start WASM PostgreSQL instances and child processes; two cores.
    maxWorkers: 2,
    globalSetup: ['test/helpers/global-setup.ts'],
    // Its teardown stops and removes the server container; vitest exits when this runs out.
    teardownTimeout: 60_000,
  },
})
