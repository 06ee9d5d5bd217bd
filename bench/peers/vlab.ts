/**
 * @vlab/image itself, two ways: `vlab` = build() in a long-lived worker process (the API, warm like
 * a daemon); `vlab-cli` = `node packages/core/bin/vbuild.js build` per build (what a user types:
 * includes node + tsx start-up). Cold = a fresh copy of the template store (bases only).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { sh, timed, tail } from '../lib/measure.ts';
import { VBUILD } from '../lib/bases.ts';
import type { BenchEnv, BuildOutcome, Peer } from './types.ts';

abstract class VlabBase implements Peer {
  abstract name: string;
  protected env!: BenchEnv;
  protected root = '';
  async setup(env: BenchEnv): Promise<void> {
    this.env = env;
    this.root = path.join(env.dataDir, 'stores', this.name);
    await this.reset();
  }
  async reset(): Promise<void> {
    await fs.rm(this.root, { recursive: true, force: true });
    await fs.mkdir(path.dirname(this.root), { recursive: true });
    await sh(['cp', '-a', this.env.bases.templateStore, this.root]);
  }
  abstract build(context: string, tag: string): Promise<BuildOutcome>;
  storeDirs(): string[] {
    return [this.root];
  }
  async teardown(): Promise<void> {
    await fs.rm(this.root, { recursive: true, force: true });
  }
}

export class VlabApi extends VlabBase {
  name = 'vlab';
  private child?: ChildProcess;
  private seq = 1;
  override async setup(env: BenchEnv): Promise<void> {
    await super.setup(env);
    const child = fork(path.join(env.repo, 'bench/lib/vlab-worker.ts'), [], {
      execArgv: ['--import', 'tsx', ...(process.env.BENCH_VLAB_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_VLAB_PROF}`] : [])],
      cwd: env.repo,
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (c) => reject(new Error(`worker exited ${c}`)));
    });
  }
  build(context: string, tag: string): Promise<BuildOutcome> {
    const id = this.seq++;
    const child = this.child!;
    return new Promise((resolve) => {
      const on = (m: BuildOutcome & { id: number }) => {
        if (m.id !== id) return;
        child.off('message', on);
        resolve(m);
      };
      child.on('message', on);
      child.send({ id, context, tag, root: this.root });
    });
  }
  override async teardown(): Promise<void> {
    if (this.child && this.child.exitCode === null) {
      const gone = new Promise((r) => this.child!.once('exit', r));
      this.child.disconnect(); // lets the worker exit by itself (and write its --cpu-prof)
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
      if (this.child.exitCode === null) this.child.kill();
    }
    await super.teardown();
  }
}

export class VlabCli extends VlabBase {
  name = 'vlab-cli';
  async build(context: string, tag: string): Promise<BuildOutcome> {
    const argv = [...VBUILD(this.env.repo), 'build', '-f', path.join(context, 'Dockerfile'), '-t', tag, '--progress', 'plain', '--network', 'none', '--root', this.root, context];
    const r = await timed(argv, { cwd: this.env.repo });
    const out = r.stdout + r.stderr;
    const cached = (out.match(/^#\d+ CACHED$/gm) ?? []).length;
    const done = (out.match(/^#\d+ DONE/gm) ?? []).length;
    return { ok: r.code === 0, wall: r.wall, rss: r.maxRss, cached, ran: done - cached, error: r.code ? tail(out) : undefined };
  }
}
