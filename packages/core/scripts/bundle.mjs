// Bundles the vbuild CLI into one ESM file (dist/vbuild.mjs): a cold start then loads one file
// instead of transpiling ~80 TypeScript modules through tsx (about 1.2 s → 0.4 s here).
import { build } from 'esbuild';
import { renameSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
// `node scripts/bundle.mjs [OUT]`: OUT (a file in this package's dist/, so that the externals below
// resolve) for a test's private bundle; dist/vbuild.mjs by default.
const out = process.argv[2] ?? here('../dist/vbuild.mjs');
// Written aside and renamed: a vbuild starting meanwhile reads the old bundle or the new, never half
// of one (and the warm server, keyed on the file's identity, sees a new file).
const tmp = `${out}.tmp.${process.pid}`;
await build({
  entryPoints: [here('../src/cli/main.ts')],
  outfile: tmp,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // The workspace packages' TypeScript sources (their `source` export), not their dist: a fresh
  // clone has no dist, and the bundle is the one build output the CLI needs.
  conditions: ['source'],
  // CommonJS dependencies (dockerfile-ast, fast-glob) call require(); give the ESM bundle one.
  banner: {
    js: "import { createRequire as __vlabRequire } from 'node:module'; const require = __vlabRequire(import.meta.url);",
  },
  // Less to read and compile at every start; identifiers kept, so stack traces stay readable.
  minifyWhitespace: true,
  minifySyntax: true,
  // ajv (image/validate.ts, imported only when an archive is read) stays in node_modules: bundled it
  // would add ~400 kB to parse at every start. So does the zstd WASM (overlay's layer/zstd.ts,
  // imported on the first zstd export; declared in this package too so the bundle resolves it):
  // bundled, it added ~100 ms to every start here.
  external: ['ajv-draft-04', 'ajv-formats', '@hpcc-js/wasm-zstd'],
  logLevel: 'warning',
});
renameSync(tmp, out);
