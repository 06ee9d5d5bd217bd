import { defineConfig } from 'vitest/config';
import { fileURLToPath } from 'node:url';

const src = (p: string) => fileURLToPath(new URL(`./packages/${p}/src/index.ts`, import.meta.url));

// Tests run on the TypeScript sources: no build step.
export default defineConfig({
  resolve: {
    alias: {
      '@vlab/errors': src('errors'),
      '@vlab/dockerfile': src('dockerfile'),
      '@vlab/overlay': src('overlay'),
      '@vlab/image': src('core'),
    },
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Tests mount, unshare and create cgroups: keep files apart but not too many at once.
    pool: 'forks',
    maxWorkers: 2,
    minWorkers: 1,
  },
});
