/**
 * Where a big pull's CPU goes, per thread (issue 13's big/pull): the API's pull of the registry
 * bench's `big` image, N times in this process, with each thread's CPU from /proc/self/task
 * (main, libuv's pool, the gunzip workers, V8's helpers), the registry's own CPU, and `skopeo
 * copy` of the same image beside it (wall and CPU). Uses the registry bench's images (bench/.data,
 * made by `pnpm bench:registry` first).
 *
 *   node --import tsx bench/pull-threads.ts      BENCH_RUNS=3  BENCH_SKOPEO=0
 */
import { execFile, spawn } from 'node:child_process';
import { promises as fs, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pull, push } from '@vlab/image';
import { startRegistry } from '../test/registry-fixture.ts';
import { makeRegistryImages } from './lib/registry-data.ts';
import { sh } from './lib/measure.ts';

const run = promisify(execFile);
const runs = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const dataDir = path.resolve(import.meta.dirname, '.data');
const TICK = 100; // USER_HZ

/** CPU seconds (user+system) of each thread of `pid`, keyed by "tid comm". */
function threads(pid: number | 'self'): Map<string, number> {
  const out = new Map<string, number>();
  const dir = `/proc/${pid}/task`;
  for (const tid of readdirSync(dir)) {
    try {
      const s = readFileSync(`${dir}/${tid}/stat`, 'utf8');
      const close = s.lastIndexOf(')');
      const comm = s.slice(s.indexOf('(') + 1, close);
      const f = s.slice(close + 2).split(' ');
      out.set(`${tid} ${comm}`, (Number(f[11]) + Number(f[12])) / TICK);
    } catch {
      // the thread ended
    }
  }
  return out;
}

function procCpu(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICK;
}

function registryPid(dir: string): number {
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir)) return Number(p);
    } catch {
      // gone
    }
  }
  throw new Error('no registry process');
}

/** Per-thread deltas grouped by comm. */
function delta(a: Map<string, number>, b: Map<string, number>): string {
  const by = new Map<string, number>();
  for (const [k, v] of b) {
    const d = v - (a.get(k) ?? 0);
    if (d <= 0) continue;
    const comm = k.slice(k.indexOf(' ') + 1);
    const name = k.split(' ')[0] === String(process.pid) ? 'main' : comm;
    by.set(name, (by.get(name) ?? 0) + d);
  }
  return [...by.entries()]
    .sort((x, y) => y[1] - x[1])
    .map(([k, v]) => `${k} ${v.toFixed(2)}`)
    .join(', ');
}

/** Voluntary and involuntary context switches of all threads of this process. */
function switches(): [number, number] {
  let v = 0;
  let n = 0;
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const st = readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
      v += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(st)?.[1] ?? 0);
      n += Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(st)?.[1] ?? 0);
    } catch {
      // the thread ended
    }
  }
  return [v, n];
}

async function main(): Promise<void> {
  const say = (s: string) => process.stderr.write(s + '\n');
  say(`load: ${(await sh(['uptime'])).trim()}`);
  const images = await makeRegistryImages(dataDir, false, say);
  const reg = await startRegistry();
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'vlab-pullthreads-'));
  try {
    await push(images.big.ref, `${reg.host}/src/big:1`, { root: images.big.store, tlsVerify: false });
    const rpid = registryPid(reg.dir);
    for (let r = 0; r < runs; r++) {
      const into = path.join(scratch, `big-${r}`);
      await run('sync');
      const t0 = threads('self');
      const x0 = switches();
      const r0 = procCpu(rpid);
      const perf = process.env.BENCH_PERF
        ? spawn(
            'perf',
            ['record', '-g', '-F', '1999', '-p', String(process.pid), '-o', `${process.env.BENCH_PERF}.${r}`],
            { stdio: 'ignore' },
          )
        : undefined;
      if (perf) await new Promise((res) => setTimeout(res, 500));
      const w0 = performance.now();
      await pull(`${reg.host}/src/big:1`, { root: into, tlsVerify: false });
      const wall = (performance.now() - w0) / 1000;
      if (perf) {
        perf.kill('SIGINT');
        await new Promise((res) => perf.once('exit', res));
      }
      const t1 = threads('self');
      const x1 = switches();
      const total = [...t1].reduce((n, [k, v]) => n + v - (t0.get(k) ?? 0), 0);
      say(
        `vlab run ${r + 1}: wall ${wall.toFixed(3)} s, CPU ${total.toFixed(2)} s, registry ${(procCpu(rpid) - r0).toFixed(2)} s; switches ${x1[0] - x0[0]} voluntary, ${x1[1] - x0[1]} not; ${delta(t0, t1)}`,
      );
      await fs.rm(into, { recursive: true, force: true });
      if (process.env.BENCH_SKOPEO === '0') continue;
      const dest = path.join(scratch, `skopeo-${r}`);
      await run('sync');
      const s0 = procCpu(rpid);
      const w1 = performance.now();
      const { stderr } = await run('/usr/bin/time', [
        '-f',
        '%U %S',
        'skopeo',
        'copy',
        '-q',
        '--src-tls-verify=false',
        `docker://${reg.host}/src/big:1`,
        `oci:${dest}:big`,
      ]);
      const [u, s] = stderr.trim().split('\n').at(-1)!.split(' ').map(Number);
      say(
        `skopeo run ${r + 1}: wall ${((performance.now() - w1) / 1000).toFixed(3)} s, CPU ${(u! + s!).toFixed(2)} s (user ${u} sys ${s}), registry ${(procCpu(rpid) - s0).toFixed(2)} s`,
      );
      await fs.rm(dest, { recursive: true, force: true });
    }
  } finally {
    await reg.stop();
    await fs.rm(scratch, { recursive: true, force: true });
  }
  say(`load after: ${(await sh(['uptime'])).trim()}`);
}

await main();
