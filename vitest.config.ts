import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One PostgreSQL per test run (embedded unless PGDV_TEST_DATABASE_URL or Docker);
    // each test file works in its own database cloned from a migrated template.
    globalSetup: ['test/setup/global.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // @oclif/test's runCommand captures stdout itself; vitest must not intercept it first.
    disableConsoleIntercept: true,
    reporters: ['default'],
  },
})
