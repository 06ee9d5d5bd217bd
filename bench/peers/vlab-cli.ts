/**
 * The `vbuild` CLI per build, what a user types, two ways:
 * - `vlab-cli`: `packages/core/bin/vbuild build …`: the native client and its warm server
 *   (native/vbuild-client.c, src/cli/server.ts), started on demand by the first command (untimed
 *   here, in setup) and kept for the run, as on a user's machine. Peak RSS is the larger of the
 *   client's and the server's (VmHWM, reset before each build; the server's heap carries what
 *   earlier cases left).
 * - `vlab-cli-direct`: the same with `VLAB_NO_SERVER=1`: node starts and loads the one-file bundle
 *   for every command (with sources newer than the bundle, tsx runs them: much slower).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readHwm, resetHwm, sh, timed, tail } from '../lib/measure.ts';
import { runStepTimes, type Stamped } from '../lib/steps.ts';
import type { BenchEnv, BuildOutcome } from './types.ts';
import { VlabBase } from './vlab.ts';

export class VlabCli extends VlabBase {
  name: string;
  private srvDir = '';
  constructor(private readonly fast: boolean) {
    super();
    this.name = fast ? 'vlab-cli' : 'vlab-cli-direct';
  }

  private get bin(): string {
    return path.join(this.env.repo, 'packages/core/bin/vbuild');
  }
  private get runEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      VLAB_SERVER_DIR: this.srvDir,
      VLAB_NO_SERVER: this.fast ? '' : '1',
    };
    delete env.NODE_OPTIONS; // acts on node: the client would run direct
    return env;
  }
  private async serverPid(): Promise<number | undefined> {
    const f = (await fs.readdir(this.srvDir).catch(() => [])).find((n) => n.endsWith('.pid'));
    return f ? Number(await fs.readFile(path.join(this.srvDir, f), 'utf8').catch(() => '')) || undefined : undefined;
  }

  override async setup(env: BenchEnv): Promise<void> {
    this.srvDir = path.join(env.dataDir, `server-${this.name}`);
    await fs.mkdir(this.srvDir, { recursive: true, mode: 0o700 });
    await fs.chmod(this.srvDir, 0o700);
    // The one-file bundle first: without it (a fresh clone) or with sources newer than it, the bin
    // runs the sources through tsx, which would time tsx instead of what an installed vbuild starts.
    await sh(['node', path.join(env.repo, 'packages/core/scripts/bundle.mjs')], { cwd: env.repo });
    await super.setup(env);
    if (!this.fast) return;
    // The first command starts the server (and runs direct); wait until it listens.
    await timed([this.bin, '--version'], { env: this.runEnv });
    for (let i = 0; i < 100 && !(await this.serverPid()); i++) await new Promise((r) => setTimeout(r, 100));
    if (!(await this.serverPid())) throw new Error(`the vbuild server did not start (see ${this.srvDir}/*.log)`);
  }

  async build(context: string, tag: string): Promise<BuildOutcome> {
    const argv = [this.bin, 'build', '-f', path.join(context, 'Dockerfile'), '-t', tag];
    argv.push('--progress', 'plain', '--network', 'none', '--root', this.root, context);
    const pid = this.fast ? await this.serverPid() : undefined;
    if (pid) await resetHwm([pid]);
    const lines: Stamped[] = [];
    const r = await timed(argv, { cwd: this.env.repo, env: this.runEnv, lines });
    const out = r.stdout + r.stderr;
    const cached = (out.match(/^#\d+ CACHED$/gm) ?? []).length;
    const done = (out.match(/^#\d+ DONE/gm) ?? []).length;
    return {
      ok: r.code === 0,
      wall: r.wall,
      rss: Math.max(r.maxRss, pid ? await readHwm([pid]) : 0),
      cached,
      ran: done - cached,
      steps: runStepTimes(lines),
      error: r.code ? tail(out) : undefined,
    };
  }

  override async teardown(): Promise<void> {
    const pid = await this.serverPid();
    if (pid) process.kill(pid, 'SIGTERM');
    await super.teardown();
  }
}
