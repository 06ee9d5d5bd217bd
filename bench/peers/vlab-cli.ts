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
import path from 'node:path';
import { readHwm, resetHwm, sh, timed, tail } from '../lib/measure.ts';
import { VbuildServer } from '../lib/vbuild-server.ts';
import { runStepTimes, type Stamped } from '../lib/steps.ts';
import type { BenchEnv, BuildOutcome } from './types.ts';
import { VlabBase } from './vlab.ts';

export class VlabCli extends VlabBase {
  name: string;
  private srv!: VbuildServer;
  constructor(private readonly fast: boolean) {
    super();
    this.name = fast ? 'vlab-cli' : 'vlab-cli-direct';
  }

  private get bin(): string {
    return this.srv.bin;
  }
  private get runEnv(): NodeJS.ProcessEnv {
    return this.srv.env(this.fast);
  }
  /** Every slot's server: a concurrent build runs in a spare (parallel4). */
  private serverPids(): Promise<number[]> {
    return this.srv.pids();
  }

  override async setup(env: BenchEnv): Promise<void> {
    this.srv = new VbuildServer(env.repo, path.join(env.dataDir, `server-${this.name}`));
    await this.srv.stop(); // one a killed run left, before its store is replaced
    // The one-file bundle first: without it (a fresh clone) or with sources newer than it, the bin
    // runs the sources through tsx, which would time tsx instead of what an installed vbuild starts.
    await sh(['node', path.join(env.repo, 'packages/core/scripts/bundle.mjs')], { cwd: env.repo });
    await super.setup(env);
    if (this.fast) await this.srv.warm();
  }

  async build(context: string, tag: string): Promise<BuildOutcome> {
    const argv = [this.bin, 'build', '-f', path.join(context, 'Dockerfile'), '-t', tag];
    argv.push('--progress', 'plain', '--network', 'none', '--root', this.root, context);
    const pids = this.fast ? await this.serverPids() : [];
    if (pids.length) await resetHwm(pids);
    const lines: Stamped[] = [];
    const r = await timed(argv, { cwd: this.env.repo, env: this.runEnv, lines });
    const out = r.stdout + r.stderr;
    const cached = (out.match(/^#\d+ CACHED$/gm) ?? []).length;
    const done = (out.match(/^#\d+ DONE/gm) ?? []).length;
    return {
      ok: r.code === 0,
      wall: r.wall,
      rss: Math.max(r.maxRss, pids.length ? await readHwm(pids) : 0),
      cached,
      ran: done - cached,
      steps: runStepTimes(lines),
      error: r.code ? tail(out) : undefined,
    };
  }

  override async teardown(): Promise<void> {
    await this.srv.stop();
    await super.teardown();
  }
}
