#!/usr/bin/env node
// Runs the bundled CLI (dist/vbuild.mjs, made by `pnpm --filter @vlab/image bundle`) when it is
// newer than every source file; otherwise the TypeScript sources directly through tsx, so a fresh
// clone or an edited tree never runs stale code.
import { statSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const pkgRoot = fileURLToPath(new URL('..', import.meta.url));
const bundle = `${pkgRoot}dist/vbuild.mjs`;

function newestSource(dirs) {
  let newest = 0;
  const visit = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory()) visit(p);
      else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const d of dirs) visit(d);
  return newest;
}

let useBundle = false;
try {
  const built = statSync(bundle).mtimeMs;
  const srcDirs = ['core', 'dockerfile', 'overlay', 'errors'].map((p) => `${pkgRoot}../${p}/src`);
  useBundle = process.env.VLAB_NO_BUNDLE !== '1' && built >= newestSource(srcDirs);
} catch {
  useBundle = false;
}
if (useBundle) {
  await import(bundle);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
