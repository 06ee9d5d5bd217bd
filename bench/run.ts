/**
 * `pnpm bench [--quick]`: builds every case with @vlab/image and each peer, measures the machine's
 * floor in the same run, prints one table of times and ratios, the targets (met / not met) and
 * which peers ran or failed. Env: BENCH_CASES=hello,steps20  BENCH_RUNS=3  BENCH_PEERS=vlab,buildkit
 * BENCH_SCALE_GIB=1,4 (copy-big peak RSS vs size, ours only)  BENCH_DROP_CACHES=1 (cold builds read the
 * context from the disk; by default every cold build finds it in the page cache: measure.ts).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CASES, prepareContext, selectCases, sizes, type Case } from './cases.ts';
import { makeBases } from './lib/bases.ts';
import { measureFloors } from './lib/floor.ts';
import { settleBeforeCold, duBytes, median } from './lib/measure.ts';
import { bytes, ratio, render, secs, stat } from './lib/table.ts';
import { evaluate, evaluate16, type Cell, type Results } from './lib/targets.ts';
import { chartSvg } from './lib/chart.ts';
import { scaleRows } from './lib/scale.ts';
import { benchNotes } from './lib/notes.ts';
import { makePeers } from './peers/index.ts';
import { parallelBuilds, serialBuilds } from './lib/parallel.ts';
import { depthRows } from './lib/depth.ts';
import type { BenchEnv, Peer } from './peers/types.ts';
import { installInterrupt, interruptExitCode, interrupted, onHardStop } from './lib/interrupt.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dataDir = path.join(repo, 'bench', '.data');
const quick = process.argv.includes('--quick');
const runs = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const cases = selectCases();
const s = sizes(quick);
const log = (m: string) => process.stderr.write(`[bench] ${m}\n`);
const started = Date.now();
installInterrupt(log);

await fs.mkdir(dataDir, { recursive: true });
const bases = await makeBases(repo, dataDir, s, log);
const env: BenchEnv = { repo, dataDir, bases, log };
const ctx = new Map<string, string>();
for (const c of cases) ctx.set(c.name, await prepareContext(dataDir, c, s));
const has = (n: string) => ctx.has(n);

log('floor');
const floors = await measureFloors(
  {
    dataDir,
    busyboxRootfsTar: bases.rootfsTar.busybox,
    smallDir: has('copy-small') ? path.join(ctx.get('copy-small')!, 'data') : undefined,
    bigFile: has('copy-big') ? path.join(ctx.get('copy-big')!, 'big.bin') : undefined,
    oneFile: has('edit') ? path.join(ctx.get('edit')!, 'data/d00/f00007.txt') : undefined,
  },
  runs,
);

const peers = makePeers(process.env.BENCH_PEERS);
/** `builder:case` pairs not to run (e.g. `buildah-chroot:copy-huge`, minutes a run): marked skipped in the table. */
const skips = new Set(
  (process.env.BENCH_SKIP ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);
const results: Results = new Map();
const peerStatus: [string, string][] = [];
let editN = Date.now() % 100000;

for (const peer of peers) {
  if (interrupted()) break;
  const cells = new Map<string, Cell>();
  results.set(peer.name, cells);
  log(`${peer.name}: setup`);
  const forget = onHardStop(() => peer.teardown());
  try {
    await peer.setup(env);
  } catch (e) {
    peerStatus.push([peer.name, `FAILED at setup: ${(e as Error).message.slice(0, 300)}`]);
    await peer.teardown().catch(() => undefined);
    forget();
    continue;
  }
  let failures = 0;
  for (const c of cases) {
    if (interrupted()) break;
    if (skips.has(`${peer.name}:${c.name}`)) {
      for (const ph of c.phases) cells.set(`${c.name}/${ph}`, { skipped: 'BENCH_SKIP' });
      log(`${peer.name} ${c.name}: skipped (BENCH_SKIP)`);
      continue;
    }
    try {
      await runCase(peer, c, cells);
    } catch (e) {
      failures++;
      for (const ph of c.phases)
        if (!cells.get(`${c.name}/${ph}`)?.stat)
          cells.set(`${c.name}/${ph}`, { error: (e as Error).message.slice(0, 300) });
    }
  }
  peerStatus.push([peer.name, failures ? `ran; ${failures} case(s) failed (see table)` : 'ran']);
  log(`${peer.name}: teardown`);
  await peer.teardown().catch((e) => log(`${peer.name} teardown: ${(e as Error).message}`));
  forget();
}
if (interrupted()) {
  log(`${interrupted()}: stopped; no table written`);
  process.exit(interruptExitCode());
}

async function runCase(peer: Peer, c: Case, cells: Map<string, Cell>): Promise<void> {
  const dir = ctx.get(c.name)!;
  const tag = `bench-${c.name}:latest`;
  const acc = new Map<
    string,
    { wall: number[]; rss: number[]; store: number[]; ran?: number; cached?: number; steps?: number[] }
  >();
  const record = async (phase: string, fn: () => ReturnType<Peer['build']>) => {
    if (interrupted()) throw new Error(`${interrupted()}: stopped`);
    const before = duBytes(...peer.storeDirs());
    const r = await fn();
    if (!r.ok) throw new Error(`${phase}: ${r.error ?? 'failed'}`);
    const a = acc.get(phase) ?? { wall: [], rss: [], store: [] };
    a.wall.push(r.wall);
    if (r.rss) a.rss.push(r.rss);
    a.store.push(duBytes(...peer.storeDirs()) - before);
    a.ran = r.ran;
    a.cached = r.cached;
    a.steps = r.steps;
    acc.set(phase, a);
    log(`${peer.name} ${c.name}/${phase}: ${secs(r.wall)}s ran ${r.ran ?? '?'} cached ${r.cached ?? '?'}`);
  };
  try {
    // settleBeforeCold before every timed build, not once per case: with BENCH_DROP_CACHES=1 a
    // single drop left every later serial, parallel and edit build reading a cached context.
    if (c.parallel) {
      // One untimed round of each phase first, as on a machine that has built before: the at-once
      // round starts the CLI's spare servers (a burst's first build in a spare is a cold Node), the
      // serial one warms the first; the timed rounds then compare warm with warm.
      for (const warm of [serialBuilds, parallelBuilds]) {
        await peer.reset();
        const w = await warm(peer, dir, c.parallel, tag);
        if (!w.ok) throw new Error(`warm-up: ${w.error ?? 'failed'}`);
      }
      for (let i = 0; i < runs; i++) {
        await peer.reset();
        await settleBeforeCold(dir);
        await record('serial', () => serialBuilds(peer, dir, c.parallel!, tag));
        await peer.reset();
        await settleBeforeCold(dir);
        await record('parallel', () => parallelBuilds(peer, dir, c.parallel!, tag));
      }
    } else if (c.phases.includes('edit')) {
      await peer.reset();
      await c.edit!(dir, editN++);
      const first = await peer.build(dir, tag); // untimed: fills the cache
      if (!first.ok) throw new Error(`edit (initial build): ${first.error}`);
      for (let i = 0; i < runs; i++) {
        await c.edit!(dir, editN++);
        await settleBeforeCold(dir);
        await record('edit', () => peer.build(dir, tag));
      }
    } else {
      for (let i = 0; i < runs; i++) {
        await peer.reset();
        await settleBeforeCold(dir);
        await record('cold', () => peer.build(dir, tag));
        await record('cached', () => peer.build(dir, tag));
      }
    }
  } finally {
    for (const [phase, a] of acc) {
      cells.set(`${c.name}/${phase}`, {
        stat: { median: median(a.wall), min: Math.min(...a.wall), max: Math.max(...a.wall) },
        rss: a.rss.length ? Math.max(...a.rss) : undefined,
        storeBytes: median(a.store),
        ran: a.ran,
        cached: a.cached,
        steps: a.steps,
      });
    }
  }
}

const scale = process.env.BENCH_SCALE_GIB ? await scaleRows(env, process.env.BENCH_SCALE_GIB, runs) : undefined;

// ---- output ----
const names = peers.map((p) => p.name);
const rowKeys = cases.flatMap((c) => c.phases.map((ph) => `${c.name}/${ph}`));
const floorOf = (key: string) => {
  const c = CASES.find((x) => x.name === key.split('/')[0])!;
  if (key.endsWith('/cached')) return 'node -e 0';
  return c.floor.map((f) => `${f.times > 1 ? `${f.times}×` : ''}${f.name}`).join(' / ');
};
const floorVal = (key: string) => {
  const c = CASES.find((x) => x.name === key.split('/')[0])!;
  const list = key.endsWith('/cached') ? [{ name: 'node -e 0', times: 1 }] : c.floor;
  return list
    .map((f) => {
      const st = floors.get(f.name);
      return st && 'median' in st ? secs(st.median * f.times) : 'err';
    })
    .join(' / ');
};
const bkOf = (key: string) => results.get('buildkit')?.get(key)?.stat?.median;
const timeRows = rowKeys.map((key) => [
  key,
  ...names.map((n) => {
    const cell = results.get(n)?.get(key);
    if (!cell) return peerStatus.find((p) => p[0] === n)?.[1].startsWith('FAILED') ? 'failed' : '–';
    if (cell.skipped) return 'skipped';
    if (!cell.stat) return `ERR`;
    const bk = bkOf(key);
    return n === 'buildkit' || !bk ? stat(cell.stat) : `${stat(cell.stat)} ${ratio(cell.stat.median / bk)}`;
  }),
  `${floorVal(key)} (${floorOf(key)})`,
]);
const detailRows = rowKeys.map((key) => [
  key,
  ...names.map((n) => {
    const cell = results.get(n)?.get(key);
    if (!cell?.stat) return '–';
    const steps = cell.ran !== undefined ? ` r${cell.ran}/c${cell.cached}` : '';
    return `${bytes(cell.rss)} ${bytes(cell.storeBytes)}${steps}`;
  }),
]);
const errors = [...results].flatMap(([n, m]) =>
  [...m].filter(([, c]) => c.error).map(([k, c]) => `- ${n} ${k}: ${c.error}`),
);
const skipped = [...results].flatMap(([n, m]) =>
  [...m].filter(([, c]) => c.skipped).map(([k, c]) => `- ${n} ${k}: not run (${c.skipped})`),
);
const floorRows = [...floors].map(([n, st]) => [n, 'median' in st ? stat(st) : `error: ${st.error}`]);
const targetRows = evaluate(results, floors, names).map((t) => [t.target, t.value, t.verdict]);
const notes = benchNotes(repo);
const facts = { smallFiles: s.smallFiles, hugeFiles: s.hugeFiles, scale: scale?.points };
const target16Rows = evaluate16(results, facts).map((t) => [t.target, t.value, t.verdict]);

const out = [
  `## @vlab/image bench — ${new Date().toISOString()} — ${quick ? 'quick' : 'full'} — ${runs} run(s)`,
  `sizes: copy-small ${s.smallFiles} files, copy-big ${bytes(s.bigBytes)}, big base +${s.baseFiles} files (synthetic, imported by vbuild)`,
  '',
  '### Wall time, seconds: median (min–max), and ratio to BuildKit',
  render(['case/phase', ...names, 'floor'], timeRows),
  '',
  '### Peak RSS of the builder, store bytes written (median), steps ran/cached (last run)',
  render(['case/phase', ...names], detailRows),
  '',
  '### Floor (same run)',
  render(['floor', 'seconds: median (min–max)'], floorRows),
  '',
  '### Targets of issue 16 (ours = vlab-cli, the CLI as users run it)',
  render(['target', 'value', 'verdict'], target16Rows),
  '',
  '### Earlier targets (ours = vlab, the API in a warm worker)',
  render(['target', 'value', 'verdict'], targetRows),
  '',
  '### Builders',
  render(['builder', 'status'], peerStatus),
  ...(errors.length ? ['', '### Errors', ...errors] : []),
  ...(skipped.length ? ['', '### Skipped on purpose', ...skipped] : []),
  ...(notes.length ? ['', '### Notes', ...notes] : []),
  ...(scale ? ['', `### copy-big peak RSS vs file size (${scale.peer}, cold)`, scale.table] : []),
  ...depthRows(results, names),
  '',
  `total bench time ${((Date.now() - started) / 60000).toFixed(1)} min`,
].join('\n');
process.stdout.write(`${out}\n`);
await fs.writeFile(path.join(dataDir, 'latest.md'), `${out}\n`);
const title = `@vlab/image bench, ${new Date().toISOString().slice(0, 16)}Z, ${quick ? 'quick' : 'full'}, ${runs} run(s)`;
await fs.writeFile(path.join(dataDir, 'latest.svg'), chartSvg({ title, builders: names, rows: rowKeys, results }));
log(`wrote ${path.join(dataDir, 'latest.md')} and latest.svg`);
