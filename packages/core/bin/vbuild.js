#!/usr/bin/env node
// Installed from npm (no src/ beside dist/): runs the one-file bundle dist/vbuild.mjs. In the
// checkout: the bundle (made by `pnpm --filter @vlab/image bundle`) when it is newer than every
// source file; otherwise the TypeScript sources directly through tsx, so a fresh clone or an
// edited tree never runs stale code.
import { existsSync, readdirSync, statSync } from 'node:fs';
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

function bundleIsCurrent() {
  if (!existsSync(`${pkgRoot}src`)) return true; // an installed package ships only the bundle
  try {
    const built = statSync(bundle).mtimeMs;
    const srcDirs = ['core', 'dockerfile', 'overlay', 'errors'].map((p) => `${pkgRoot}../${p}/src`);
    return process.env.VLAB_NO_BUNDLE !== '1' && built >= newestSource(srcDirs);
  } catch {
    return false;
  }
}

if (bundleIsCurrent()) {
  await import(bundle);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  // The workspace packages' `source` export condition (their src/index.ts), added to every import
  // resolved after this point; registered after tsx, so it runs before tsx's resolver.
  const { register: registerHook } = await import('node:module');
  registerHook(
    'data:text/javascript,export function resolve(s, c, next) { return next(s, { ...c, conditions: [...c.conditions, "source"] }); }',
  );
  await import('../src/cli/main.ts');
}
