import { defineConfig } from 'vitest/config';

// Tests run from TypeScript sources; tests that spawn real processes use dist/ (built by `npm test` first).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
