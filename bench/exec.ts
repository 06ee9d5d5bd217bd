/**
 * Container start-to-exit latency of /bin/true: each executor, beside the floors —
 * `unshare … chroot … /bin/true` (namespaces only, no cgroups/mounts) and `runc run` of a minimal
 * bundle (what the OCI executor adds on top of the runtime). Median of 50, same run, same rootfs.
 *
 *   node --import tsx bench/exec.ts
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { BuiltinExecutor } from '../packages/core/src/exec/builtin.ts';
import { OciRuntimeExecutor, findRuntime } from '../packages/core/src/exec/oci-runtime.ts';
import { makeBusyboxRootfs } from '../packages/core/src/exec/testing/rootfs.ts';

const run = promisify(execFile);
const N = Number(process.env.BENCH_N ?? 50);

async function measure(fn: () => Promise<unknown>): Promise<{ median: number; p90: number }> {
  await fn(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(N / 2)], p90: times[Math.floor(N * 0.9)] };
}

const rows: [string, { median: number; p90: number }][] = [];
const root = await makeBusyboxRootfs();
const bundle = await fs.mkdtemp('/tmp/vlab-bench-bundle-');
try {
  rows.push([
    'unshare -pfmuin chroot (floor)',
    await measure(() => run('unshare', ['-pfmuin', 'chroot', root, '/bin/true'])),
  ]);
  const runc = await findRuntime('runc');
  if (runc) {
    await run(runc, ['spec', '--bundle', bundle]);
    const cfg = JSON.parse(await fs.readFile(path.join(bundle, 'config.json'), 'utf8'));
    cfg.process.terminal = false;
    cfg.process.args = ['/bin/true'];
    cfg.root = { path: root, readonly: false };
    await fs.writeFile(path.join(bundle, 'config.json'), JSON.stringify(cfg));
    let i = 0;
    rows.push([
      'runc run, minimal bundle (floor)',
      await measure(() =>
        run(runc, ['--root', '/run/vlab/bench', 'run', '--bundle', bundle, `vlab-bench-${process.pid}-${i++}`]),
      ),
    ]);
  }
  const spec = { rootfs: root, argv: ['/bin/true'], env: [], cwd: '/' };
  const builtin = await BuiltinExecutor.create();
  rows.push(['vlab builtin executor', await measure(() => builtin.run(spec))]);
  for (const name of ['runc', 'crun'] as const) {
    if (!(await findRuntime(name))) continue;
    const ex = await OciRuntimeExecutor.create(name);
    const label = `vlab OCI executor (${name})`;
    try {
      rows.push([label, await measure(() => ex.run(spec))]);
    } catch (e) {
      console.error(`${label}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
} finally {
  await fs.rm(root, { recursive: true, force: true });
  await fs.rm(bundle, { recursive: true, force: true });
}

const w = Math.max(...rows.map(([n]) => n.length));
console.log(`/bin/true start-to-exit latency, ${N} runs each\n`);
console.log(`${'what'.padEnd(w)}  median ms  p90 ms`);
for (const [name, { median, p90 }] of rows) {
  console.log(`${name.padEnd(w)}  ${median.toFixed(1).padStart(9)}  ${p90.toFixed(1).padStart(6)}`);
}
