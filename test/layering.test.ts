/**
 * Dependency direction (DESIGN.md): errors ← dockerfile / overlay ← core's store ← cache ← layers
 * ← solve ← api ← cli. Imports are read from the TypeScript sources (ts.preProcessFile: static,
 * re-exports, `import()` types and calls) and every rule below is checked; a violation names the
 * file, the import and the rule. Tests and test fixtures (`*.test.ts`, `testing/`) may reach
 * across layers and are not checked.
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(import.meta.dirname, '..');

interface Import {
  /** Repo-relative file that imports. */
  file: string;
  /** The specifier as written. */
  spec: string;
  /** Repo-relative target for a relative import; undefined for a package or node: import. */
  target?: string;
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && e.name !== 'testing') out.push(...sources(p));
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function importsOf(abs: string): Import[] {
  const info = ts.preProcessFile(fs.readFileSync(abs, 'utf8'), true, true);
  const file = path.relative(repo, abs);
  return info.importedFiles.map(({ fileName: spec }) => ({
    file,
    spec,
    target: spec.startsWith('.') ? path.relative(repo, path.resolve(path.dirname(abs), spec)) : undefined,
  }));
}

const CORE = 'packages/core/src/';
/** The layer of a core file: its first directory under src/, or the top-level file's name. */
const area = (f: string) => (f.startsWith(CORE) ? f.slice(CORE.length).split('/')[0]!.replace(/\.ts$/, '') : undefined);
const pkgOf = (f: string) => /^packages\/([^/]+)\//.exec(f)?.[1];

interface Rule {
  name: string;
  /** Files the rule constrains. */
  applies: (file: string) => boolean;
  /** True when the import is allowed. */
  allows: (i: Import) => boolean;
}

const inAreas =
  (...areas: string[]) =>
  (f: string) =>
    areas.includes(area(f) ?? '');
const notInto =
  (...areas: string[]) =>
  (i: Import) =>
    !i.target || !areas.includes(area(i.target) ?? '');

const RULES: Rule[] = [
  {
    name: 'a package reaches another only by its name, never by a relative path into it',
    applies: (f) => f.startsWith('packages/'),
    allows: (i) => !i.target || pkgOf(i.target) === pkgOf(i.file),
  },
  {
    name: '@vlab/errors depends on no other @vlab package',
    applies: (f) => pkgOf(f) === 'errors',
    allows: (i) => !i.spec.startsWith('@vlab/'),
  },
  {
    name: '@vlab/dockerfile and @vlab/overlay depend only on @vlab/errors',
    applies: (f) => pkgOf(f) === 'dockerfile' || pkgOf(f) === 'overlay',
    allows: (i) => !i.spec.startsWith('@vlab/') || i.spec === '@vlab/errors',
  },
  {
    name: 'store/ is below cache/ and layers/',
    applies: inAreas('store'),
    allows: notInto('cache', 'layers'),
  },
  {
    name: 'cache/ is below layers/',
    applies: inAreas('cache'),
    allows: notInto('layers'),
  },
  {
    name: 'store/, cache/ and layers/ are below the solver, the API and the CLI',
    applies: inAreas('store', 'cache', 'layers'),
    allows: notInto('plan', 'solve', 'api', 'index', 'cli'),
  },
  {
    name: 'the planner and the solver are below the API and the CLI',
    applies: inAreas('plan', 'solve'),
    allows: notInto('api', 'index', 'cli'),
  },
  {
    name: 'only the CLI imports the CLI',
    applies: (f) => f.startsWith(CORE) && area(f) !== 'cli',
    allows: notInto('cli'),
  },
  {
    name: 'the CLI uses only the public API (index.ts), its own flag and output helpers, @vlab/errors and node:',
    applies: inAreas('cli'),
    allows: (i) =>
      i.spec.startsWith('node:') ||
      i.spec === '@vlab/errors' ||
      i.target === `${CORE}index.ts` ||
      i.target === 'packages/core/package.json' ||
      (i.target !== undefined && area(i.target) === 'cli'),
  },
];

function violations(imports: Import[], rules = RULES): string[] {
  return imports.flatMap((i) =>
    rules.filter((r) => r.applies(i.file) && !r.allows(i)).map((r) => `${i.file}: '${i.spec}' (${r.name})`),
  );
}

describe('layering', () => {
  it('every import in packages/*/src follows the dependency direction', () => {
    const imports = ['errors', 'dockerfile', 'overlay', 'core']
      .flatMap((p) => sources(path.join(repo, 'packages', p, 'src')))
      .flatMap(importsOf);
    expect(imports.length).toBeGreaterThan(300); // the sources were found and read
    expect(violations(imports)).toEqual([]);
  });

  it('the checker catches each kind of wrong-way import', () => {
    const bad: Import[] = [
      { file: `${CORE}store/gc.ts`, spec: '../solve/keys.ts', target: `${CORE}solve/keys.ts` },
      { file: `${CORE}store/fsck.ts`, spec: '../cache/cache.ts', target: `${CORE}cache/cache.ts` },
      { file: `${CORE}cli/images.ts`, spec: '../image/load.ts', target: `${CORE}image/load.ts` },
      { file: `${CORE}cli/images.ts`, spec: 'tar-stream' },
      { file: `${CORE}solve/solver.ts`, spec: '../api.ts', target: `${CORE}api.ts` },
      { file: `${CORE}api.ts`, spec: './cli/flags.ts', target: `${CORE}cli/flags.ts` },
      { file: 'packages/overlay/src/x.ts', spec: '@vlab/dockerfile' },
      { file: 'packages/overlay/src/x.ts', spec: '../../core/src/api.ts', target: `${CORE}api.ts` },
    ];
    expect(bad.map((i) => violations([i]).length)).toEqual(bad.map(() => 1));
    const good: Import[] = [
      { file: `${CORE}layers/gc.ts`, spec: '../store/lease.ts', target: `${CORE}store/lease.ts` },
      { file: `${CORE}cli/images.ts`, spec: '../index.ts', target: `${CORE}index.ts` },
      { file: `${CORE}cli/main.ts`, spec: './flags.ts', target: `${CORE}cli/flags.ts` },
      { file: `${CORE}solve/solver.ts`, spec: '../layers/manager.ts', target: `${CORE}layers/manager.ts` },
    ];
    expect(good.flatMap((i) => violations([i]))).toEqual([]);
  });
});
