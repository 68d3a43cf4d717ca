import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    // The live nodes (test/gateways.ts) are started once for every file.
    globalSetup: ['test/gateways.ts'],
    testTimeout: 30_000,
    hookTimeout: 90_000,
  },
});
