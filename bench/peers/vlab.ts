/**
 * @vlab/image itself: `vlab` = build() in a long-lived worker process (the API, warm like a
 * daemon); the CLI rows are in vlab-cli.ts. Cold = a fresh copy of the template store (bases only).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { sh } from '../lib/measure.ts';
import type { BenchEnv, BuildOutcome, Peer } from './types.ts';

export abstract class VlabBase implements Peer {
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
  private warmup = { context: '', root: '' };

  override async setup(env: BenchEnv): Promise<void> {
    // A scratch store and context for the untimed warm-up build after each restart.
    this.warmup.root = path.join(env.dataDir, 'stores', 'vlab-warmup');
    this.warmup.context = path.join(env.dataDir, 'vlab-warmup-ctx');
    await fs.rm(this.warmup.root, { recursive: true, force: true });
    // stores/ does not exist yet on a fresh checkout (super.setup() makes it, after this).
    await fs.mkdir(path.dirname(this.warmup.root), { recursive: true });
    await sh(['cp', '-a', env.bases.templateStore, this.warmup.root]);
    await fs.mkdir(this.warmup.context, { recursive: true });
    await fs.writeFile(path.join(this.warmup.context, 'Dockerfile'), 'FROM busybox:latest\nRUN true\nCOPY f /f\n');
    await fs.writeFile(path.join(this.warmup.context, 'f'), 'warm-up\n');
    await super.setup(env);
  }

  /**
   * Each cold build gets a fresh worker, warmed up untimed (modules, JIT, helper processes) on a
   * scratch store: warm like a daemon, but its peak RSS is that case's own, not the high-water
   * mark a previous case (20,000 files) left in a heap that never shrinks.
   */
  override async reset(): Promise<void> {
    await super.reset();
    await this.stopWorker();
    await this.startWorker();
    const w = await this.send({
      context: this.warmup.context,
      tag: 'warmup:latest',
      root: this.warmup.root,
      noCache: true,
    });
    if (!w.ok) throw new Error(`vlab worker warm-up failed: ${w.error}`);
  }

  private async startWorker(): Promise<void> {
    const child = fork(path.join(this.env.repo, 'bench/lib/vlab-worker.ts'), [], {
      execArgv: [
        '--import',
        'tsx',
        ...(process.env.BENCH_VLAB_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_VLAB_PROF}`] : []),
      ],
      cwd: this.env.repo,
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (c) => reject(new Error(`worker exited ${c}`)));
    });
  }

  private async stopWorker(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.disconnect(); // lets the worker exit by itself (and write its --cpu-prof)
    await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null) child.kill();
  }

  build(context: string, tag: string): Promise<BuildOutcome> {
    return this.send({ context, tag, root: this.root });
  }

  private send(req: { context: string; tag: string; root: string; noCache?: boolean }): Promise<BuildOutcome> {
    const id = this.seq++;
    const child = this.child!;
    return new Promise((resolve) => {
      const on = (m: BuildOutcome & { id: number }) => {
        if (m.id !== id) return;
        child.off('message', on);
        resolve(m);
      };
      child.on('message', on);
      child.send({ id, ...req });
    });
  }

  override async teardown(): Promise<void> {
    await this.stopWorker();
    await fs.rm(this.warmup.root, { recursive: true, force: true });
    await super.teardown();
  }
}
