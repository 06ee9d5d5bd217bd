import { defineConfig } from 'vitest/config';

// Tests run on the TypeScript sources, no build step: every package's `exports` has a `source`
// condition (src/index.ts) before its dist/ entries. Vite resolves with it here; the Node children
// tests start (`node --import tsx …`) get it through NODE_OPTIONS, which they inherit.
const conditions = ['source', 'module', 'node', 'development|production'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['source'] } },
  test: {
    env: { NODE_OPTIONS: `--conditions=source ${process.env.NODE_OPTIONS ?? ''}`.trim() },
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Tests mount, unshare and create cgroups: keep files apart but not too many at once.
    pool: 'forks',
    maxWorkers: 2,
    minWorkers: 1,
  },
});
