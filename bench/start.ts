/**
 * CLI start-up, installed vs checkout (issue 15: "vbuild from the installed package starts from the
 * one-file bundle, as fast as the bundle starts from the checkout"). Packs and installs the
 * packages into a temp npm project (test/pack-install.ts, as the package test does), then times,
 * interleaved in one run, `vbuild --version` and a cached `vbuild build` through:
 * - `installed`: the npm project's `node_modules/.bin/vbuild` (what a user's PATH runs);
 * - `checkout bundle`: `node packages/core/dist/vbuild.mjs`;
 * - `checkout bin`: `node packages/core/bin/vbuild.js` (adds its bundle-is-current check);
 * - `npx vbuild` (adds npm's own start-up), and the `node -e 0` floor.
 * Medians of BENCH_RUNS (default 7). `node --import tsx bench/start.ts`; prints a table.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { packAndInstall, repo, userEnv } from '../test/pack-install.ts';
import { median, spawnCollect } from './lib/measure.ts';
import { ratio, render, secs } from './lib/table.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 7);

async function time(argv: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<number> {
  const t0 = performance.now();
  const r = await spawnCollect(argv, { cwd, env: userEnv(env) });
  const wall = (performance.now() - t0) / 1000;
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stderr.slice(-400)}`);
  return wall;
}

async function main(): Promise<void> {
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-bench-start-'));
  try {
    process.stderr.write('packing and installing the packages…\n');
    const app = await packAndInstall(tmp);
    const ctx = path.join(tmp, 'ctx');
    await fsp.mkdir(ctx);
    await fsp.writeFile(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /\n');
    await fsp.writeFile(path.join(ctx, 'hello.txt'), 'hello\n');
    const runners: Record<string, string[]> = {
      installed: [path.join(app, 'node_modules/.bin/vbuild')],
      'checkout bundle': ['node', path.join(repo, 'packages/core/dist/vbuild.mjs')],
      'checkout bin': ['node', path.join(repo, 'packages/core/bin/vbuild.js')],
      'npx vbuild': ['npx', '--no-install', 'vbuild'],
    };
    const tasks: Record<string, (r: string[], name: string) => string[]> = {
      '--version': (r) => [...r, '--version'],
      'cached build': (r) => [...r, 'build', '-q', ctx],
    };
    const storeOf = (name: string) => ({ VLAB_ROOT: path.join(tmp, `store-${name.replace(/\W+/g, '-')}`) });
    for (const [name, r] of Object.entries(runners)) await time(tasks['cached build']!(r, name), app, storeOf(name)); // warm: the next builds hit
    const walls = new Map<string, number[]>();
    const add = (k: string, w: number) => walls.set(k, [...(walls.get(k) ?? []), w]);
    for (let i = 0; i < RUNS; i++) {
      add('floor', await time(['node', '-e', '0'], app, {}));
      for (const [task, argv] of Object.entries(tasks))
        for (const [name, r] of Object.entries(runners))
          add(`${name}|${task}`, await time(argv(r, name), app, storeOf(name)));
    }
    const stat = (k: string) => {
      const xs = walls.get(k)!;
      return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
    };
    const rows: string[][] = [];
    for (const task of Object.keys(tasks)) {
      const base = stat(`checkout bundle|${task}`).median;
      for (const name of Object.keys(runners)) {
        const s = stat(`${name}|${task}`);
        rows.push([task, name, `${secs(s.median)} (${secs(s.min)}–${secs(s.max)})`, ratio(s.median / base)]);
      }
    }
    const f = stat('floor');
    rows.push(['floor', 'node -e 0', `${secs(f.median)} (${secs(f.min)}–${secs(f.max)})`, '']);
    process.stdout.write(
      `### vbuild start-up — ${new Date().toISOString()} — ${RUNS} run(s) — load ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}\n\n`,
    );
    process.stdout.write(`${render(['task', 'runner', 'seconds: median (min–max)', '÷ checkout bundle'], rows)}\n`);
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

await main();
