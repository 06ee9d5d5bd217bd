/**
 * What Docker's seccomp profile costs a container start (/bin/true, start to exit), same run,
 * runs interleaved: vlab-init launched directly with its spec without the seccomp tokens, with
 * them (program read from the cache), and compiled each time (no cache token); runc with a minimal
 * bundle, without and with our `linux.seccomp`. Median and p90 of BENCH_N (default 100) each.
 *
 *   node --import tsx bench/seccomp.ts
 */
import { execFile } from 'node:child_process';
import { promises as fs, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { prepareRun } from '../packages/core/src/exec/prepare.ts';
import { decodeSpec, encode, nativeSpec } from '../packages/core/src/exec/native-spec.ts';
import { initHelper } from '../packages/core/src/exec/builtin.ts';
import { findRuntime } from '../packages/core/src/exec/oci-runtime.ts';
import { ociSeccomp } from '../packages/core/src/exec/seccomp.ts';
import { makeBusyboxRootfs } from '../packages/core/src/exec/testing/rootfs.ts';

const run = promisify(execFile);
const N = Number(process.env.BENCH_N ?? 100);
const init = initHelper();
if (!init) throw new Error('vlab-init is not built: bash scripts/build-native.sh');
const hostHas = (p: string) => {
  try {
    return statSync(p).isDirectory() ? ('dir' as const) : ('file' as const);
  } catch {
    return undefined;
  }
};

/** The spec's entries without the keywords in `drop` (native-spec.ts's parser, one arity table). */
function strip(spec: Buffer, drop: Record<string, number>): Buffer {
  return encode(decodeSpec(spec).filter(([kw]) => !(kw! in drop)));
}

const root = await makeBusyboxRootfs();
const bundles: string[] = [];
const cases: [string, () => Promise<void>][] = [];
const vlabInit = (drop: Record<string, number>) => async () => {
  const prep = await prepareRun({ rootfs: root, argv: ['/bin/true'], env: [], cwd: '/' });
  const file = path.join(prep.dir, 'spec');
  await fs.writeFile(file, strip(nativeSpec({ prep, mounts: { hostHas }, cgroupProcs: [] }), drop));
  const t = performance.now();
  await run(init, [file]);
  times.get(current)!.push(performance.now() - t);
  await prep.cleanup();
};
cases.push(['vlab-init, no filter', vlabInit({ seccomp: 1, scarch: 1, scrule: 3, sccache: 1 })]);
cases.push(['vlab-init, Docker profile (cached program)', vlabInit({})]);
cases.push(['vlab-init, Docker profile (compiled each run)', vlabInit({ sccache: 1 })]);
const runc = await findRuntime('runc');
if (runc) {
  for (const withSeccomp of [false, true]) {
    const bundle = await fs.mkdtemp('/tmp/vlab-bench-bundle-');
    bundles.push(bundle);
    await run(runc, ['spec', '--bundle', bundle]);
    const cfg = JSON.parse(await fs.readFile(path.join(bundle, 'config.json'), 'utf8'));
    Object.assign(cfg.process, { terminal: false, args: ['/bin/true'] });
    cfg.root = { path: root, readonly: false };
    if (withSeccomp) cfg.linux.seccomp = ociSeccomp();
    await fs.writeFile(path.join(bundle, 'config.json'), JSON.stringify(cfg));
    let i = 0;
    cases.push([
      `runc run, minimal bundle${withSeccomp ? ' + Docker profile' : ''}`,
      async () => {
        const t = performance.now();
        await run(runc, [
          '--root',
          '/run/vlab/bench',
          'run',
          '--bundle',
          bundle,
          `vlab-bench-${process.pid}-${withSeccomp}-${i++}`,
        ]);
        times.get(current)!.push(performance.now() - t);
      },
    ]);
  }
}

const times = new Map<string, number[]>(cases.map(([n]) => [n, []]));
let current = '';
try {
  for (let i = -1; i < N; i++) {
    for (const [name, fn] of cases) {
      current = name;
      await fn();
      if (i < 0) times.get(name)!.length = 0; // warm-up round (also fills the cache)
    }
  }
} finally {
  await fs.rm(root, { recursive: true, force: true });
  for (const b of bundles) await fs.rm(b, { recursive: true, force: true });
}
const w = Math.max(...cases.map(([n]) => n.length));
console.log(`/bin/true start-to-exit latency, ${N} runs each, interleaved\n`);
console.log(`${'what'.padEnd(w)}  median ms  p90 ms`);
for (const [name, t] of times) {
  t.sort((a, b) => a - b);
  console.log(
    `${name.padEnd(w)}  ${t[Math.floor(t.length / 2)]!.toFixed(1).padStart(9)}  ${t[Math.floor(t.length * 0.9)]!.toFixed(1).padStart(6)}`,
  );
}
