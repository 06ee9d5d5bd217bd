/**
 * Container verbs against docker, in one run on this machine: `run --rm busybox true`, `ps -a`,
 * `exec`, `commit`, `start` and `stop` through the vbuild CLI as users run it (`vlab-cli`:
 * packages/core/bin/vbuild, the native client and its warm server, started once before timing),
 * the CLI direct (`vlab-cli-direct`: a new Node process each, the one-file bundle; `run` also
 * with VLAB_EXECUTOR=oci, runc), the API (`run()`, `containers.*` in
 * this warm process) and docker 20.10 on a
 * dockerd this script starts (own data root, --iptables=false --bridge=none, busybox loaded
 * into it). Medians of BENCH_RUNS, the tools interleaved per run; the floor rows say what of the
 * CLI's figure is Node start-up. Not part of `pnpm test`.
 *
 *   pnpm bench:containers                 # BENCH_RUNS=5
 *   BENCH_RUNS=15 BENCH_ROWS=run,ps pnpm bench:containers
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { containers, run } from '@vlab/image';
import { median, spawnCollect, tail } from './lib/measure.ts';
import { render, secs, ratio } from './lib/table.ts';
import { startBenchDockerd, type BenchDockerd } from './lib/dockerd.ts';
import { VbuildServer } from './lib/vbuild-server.ts';

const repo = path.resolve(import.meta.dirname, '..');
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 5));
const ROWS = process.env.BENCH_ROWS?.split(',');
const data = path.join(repo, 'bench/.data/containers');
const root = path.join(data, 'store');
const vbuildJs = path.join(repo, 'packages/core/bin/vbuild.js');
const cliEnv = { ...process.env, VLAB_ROOT: root };
const server = new VbuildServer(repo, path.join(data, 'server'));
const srvEnv = server.env(true, { VLAB_ROOT: root });

type Step = () => Promise<unknown>;
interface Row {
  name: string;
  /** Per tool: an untimed setup before each timed step, and the step. */
  tools: Partial<Record<Tool, { before?: Step; step: Step }>>;
}
type Tool = 'vlab-cli' | 'vlab-cli-direct' | 'vlab-api' | 'vlab-runc' | 'docker' | 'floor';
const TOOLS: Tool[] = ['vlab-cli', 'vlab-cli-direct', 'vlab-api', 'vlab-runc', 'docker', 'floor'];

async function ok(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const r = await spawnCollect(argv, { env });
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${tail(r.stderr)}`);
  return r.stdout;
}
const vb = (...args: string[]) => ok(['node', vbuildJs, ...args], cliEnv);
/** What users run: bin/vbuild through the warm server. */
const vsrv = (...args: string[]) => ok([server.bin, ...args], srvEnv);

function rows(d: BenchDockerd): Row[] {
  const dk = (...args: string[]) => ok(d.argv(args));
  const at = { root };
  let n = 0;
  return [
    {
      name: 'run --rm busybox true',
      tools: {
        'vlab-cli': { step: () => vsrv('run', '--rm', 'busybox', 'true') },
        'vlab-cli-direct': { step: () => vb('run', '--rm', 'busybox', 'true') },
        'vlab-api': { step: () => run({ root, image: 'busybox', cmd: ['true'], autoRemove: true }) },
        'vlab-runc': {
          step: () => ok(['node', vbuildJs, 'run', '--rm', 'busybox', 'true'], { ...cliEnv, VLAB_EXECUTOR: 'oci' }),
        },
        docker: { step: () => dk('run', '--rm', '--network', 'none', 'busybox', 'true') },
        floor: { step: () => ok(['node', '-e', '0']) },
      },
    },
    {
      name: 'ps -a',
      tools: {
        'vlab-cli': { step: () => vsrv('ps', '-a') },
        'vlab-cli-direct': { step: () => vb('ps', '-a') },
        'vlab-api': { step: () => containers.list({ all: true, root }) },
        docker: { step: () => dk('ps', '-a') },
        floor: { step: () => vb('--version') },
      },
    },
    {
      name: 'exec CTR true',
      tools: {
        'vlab-cli': { step: () => vsrv('exec', 'bx', 'true') },
        'vlab-cli-direct': { step: () => vb('exec', 'bx', 'true') },
        'vlab-api': { step: () => containers.exec('bx', ['true'], at) },
        docker: { step: () => dk('exec', 'bx', 'true') },
      },
    },
    {
      name: 'commit CTR (one new file)',
      tools: {
        'vlab-cli': { step: () => vsrv('commit', 'bc', `bc:${n++}`) },
        'vlab-cli-direct': { step: () => vb('commit', 'bc', `bc:${n++}`) },
        'vlab-api': { step: () => containers.commit('bc', `bc:${n++}`, at) },
        docker: { step: () => dk('commit', 'bc', `bc:${n++}`) },
      },
    },
    {
      name: 'start CTR (detached)',
      tools: {
        'vlab-cli': { before: () => vsrv('stop', '-t', '0', 'bs'), step: () => vsrv('start', 'bs') },
        'vlab-cli-direct': { before: () => vsrv('stop', '-t', '0', 'bs'), step: () => vb('start', 'bs') },
        'vlab-api': { before: () => vsrv('stop', '-t', '0', 'bs'), step: () => containers.start('bs', at) },
        docker: { before: () => dk('stop', '-t', '0', 'bs'), step: () => dk('start', 'bs') },
      },
    },
    {
      name: 'stop -t 0 CTR',
      tools: {
        'vlab-cli': { before: () => vsrv('start', 'bs'), step: () => vsrv('stop', '-t', '0', 'bs') },
        'vlab-cli-direct': { before: () => vsrv('start', 'bs'), step: () => vb('stop', '-t', '0', 'bs') },
        'vlab-api': { before: () => vsrv('start', 'bs'), step: () => containers.stop('bs', { timeout: 0, root }) },
        docker: { before: () => dk('start', 'bs'), step: () => dk('stop', '-t', '0', 'bs') },
      },
    },
  ];
}

/** The containers the verbs work on, the same in both: bx runs, bc has one new file, bs is stopped. */
async function fixtures(d: BenchDockerd): Promise<void> {
  const mk = async (tool: (...a: string[]) => Promise<string>, net: string[]) => {
    await tool('run', '-d', '--name', 'bx', ...net, 'busybox', 'sleep', '100000');
    await tool('run', '--name', 'bc', ...net, 'busybox', 'touch', '/new');
    await tool('run', '-d', '--name', 'bs', ...net, 'busybox', 'sleep', '100000');
  };
  await mk(vb, []);
  await mk((...a) => ok(d.argv(a)), ['--network', 'none']);
}

async function main(): Promise<void> {
  const load = () =>
    os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ');
  console.log(`## containers bench — ${new Date().toISOString()} — ${RUNS} run(s) — load ${load()}`);
  // the CLI runs the bundle only when it is newer than every source
  await ok(['pnpm', '--filter', '@vlab/image', 'bundle']);
  await fs.rm(root, { recursive: true, force: true });
  await fs.mkdir(data, { recursive: true });
  execFileSync('bash', [path.join(repo, 'examples/hello/make-base.sh')], { env: cliEnv, stdio: 'pipe' });
  const d = await startBenchDockerd(path.join(data, 'docker'));
  await server.warm({ VLAB_ROOT: root });
  const results = new Map<string, Partial<Record<Tool, number[]>>>();
  try {
    await vb('save', '-o', path.join(data, 'busybox.tar'), 'busybox');
    await ok(d.argv(['load', '-i', path.join(data, 'busybox.tar')]));
    await fixtures(d);
    console.log(
      `dockerd ${d.version} up; vbuild CLI: ${server.bin} (warm server, pid ${await server.pid()}); direct: node ${process.version}, ${vbuildJs} (bundle)`,
    );
    for (const row of rows(d).filter((r) => !ROWS || ROWS.some((w) => r.name.startsWith(w)))) {
      const times: Partial<Record<Tool, number[]>> = {};
      results.set(row.name, times);
      for (let i = -1; i < RUNS; i++)
        // run -1 warms up, untimed
        for (const t of TOOLS) {
          const x = row.tools[t];
          if (!x) continue;
          await x.before?.();
          const t0 = performance.now();
          await x.step();
          if (i >= 0) (times[t] ??= []).push((performance.now() - t0) / 1000);
        }
    }
  } finally {
    for (const c of ['bx', 'bc', 'bs']) {
      await vb('rm', '-f', c).catch(() => undefined);
      await d.run(['rm', '-f', c]);
    }
    await d.stop();
    await server.stop();
  }
  print(results, load());
}

function print(results: Map<string, Partial<Record<Tool, number[]>>>, loadAfter: string): void {
  const cell = (xs?: number[]) =>
    xs ? `${secs(median(xs))} (${secs(Math.min(...xs))}–${secs(Math.max(...xs))})` : '–';
  const vs = (a?: number[], b?: number[]) => (a && b ? ratio(median(a) / median(b)) : '–');
  const floorName = (row: string) =>
    row.startsWith('run') ? 'node -e 0' : row.startsWith('ps') ? 'vbuild --version' : '';
  const body = [...results].map(([name, t]) => [
    name,
    cell(t['vlab-cli']),
    vs(t['vlab-cli'], t.docker),
    cell(t['vlab-cli-direct']),
    cell(t['vlab-api']),
    vs(t['vlab-api'], t.docker),
    cell(t['vlab-runc']),
    cell(t.docker),
    t.floor ? `${cell(t.floor)} (${floorName(name)})` : '',
  ]);
  console.log('\n### Wall time, seconds: median (min–max); ratios to docker in the same run');
  console.log(
    render(
      [
        'verb',
        'vlab-cli',
        'cli/docker',
        'vlab-cli-direct',
        'vlab-api',
        'api/docker',
        'vlab-cli on runc',
        'docker 20.10',
        'floor',
      ],
      body,
    ),
  );
  const r = results.get('run --rm busybox true');
  if (r?.docker) {
    console.log('\n### Target: run --rm busybox true ≤ 0.5× docker run --rm');
    for (const t of ['vlab-cli', 'vlab-cli-direct', 'vlab-api'] as const) {
      if (!r[t]) continue;
      const x = median(r[t]) / median(r.docker);
      console.log(
        `- ${t}: ${ratio(x)} (${secs(median(r[t]))}s vs ${secs(median(r.docker))}s) ${x <= 0.5 ? 'met' : 'NOT MET'}`,
      );
    }
    if (r.floor && r['vlab-cli-direct'])
      console.log(
        `- of the direct CLI's ${secs(median(r['vlab-cli-direct']))}s, Node start-up (node -e 0) is ${secs(median(r.floor))}s`,
      );
  }
  console.log(`\nload after: ${loadAfter}`);
}

await main();
