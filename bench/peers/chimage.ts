/**
 * Charliecloud's ch-image (run with /usr/bin/python3: the pyenv python on PATH lacks lark), its own
 * storage dir under bench/.data, build cache on (git). Bases imported from the same rootfs tars.
 * Cold = `ch-image reset` and import again (untimed). Peak RSS = the CLI tree (/usr/bin/time).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { exists, spawnCollect, tail, timed } from '../lib/measure.ts';
import type { BenchEnv, BuildOutcome, Peer } from './types.ts';

const CH = ['/usr/bin/python3', '/usr/bin/ch-image'];

export class ChImagePeer implements Peer {
  name = 'ch-image';
  private env!: BenchEnv;
  private storage = '';
  private penv: NodeJS.ProcessEnv = {};
  private cmd(args: string[]) {
    return spawnCollect([...CH, '-s', this.storage, ...args], { env: this.penv });
  }
  async setup(env: BenchEnv): Promise<void> {
    if (!(await exists('/usr/bin/ch-image')))
      throw new Error('ch-image not installed (apt-get install charliecloud python3-lark)');
    this.env = env;
    this.storage = path.join(env.dataDir, 'stores', 'ch-image');
    this.penv = { ...process.env, USER: process.env.USER ?? 'root', CH_IMAGE_STORAGE: this.storage };
    await fs.mkdir(path.dirname(this.storage), { recursive: true });
    await this.reset();
  }
  async reset(): Promise<void> {
    await this.cmd(['reset']);
    for (const [name, tar] of Object.entries(this.env.bases.rootfsTar)) {
      const r = await this.cmd(['import', tar, `${name}:latest`]);
      if (r.code) throw new Error(`ch-image import ${name}: ${tail(r.stderr || r.stdout)}`);
    }
  }
  async build(context: string, tag: string): Promise<BuildOutcome> {
    const r = await timed(
      [...CH, '-s', this.storage, 'build', '-t', `${tag}-ch`, '-f', path.join(context, 'Dockerfile'), context],
      { env: this.penv },
    );
    const out = r.stdout + r.stderr;
    const steps = (out.match(/^\s*\d+\S* (RUN|COPY|ADD)/gm) ?? []).length;
    const cached = (out.match(/^\s*\d+\*\s+(RUN|COPY|ADD)/gm) ?? []).length;
    return {
      ok: r.code === 0,
      wall: r.wall,
      rss: r.maxRss,
      cached,
      ran: Math.max(0, steps - cached),
      error: r.code ? tail(out) : undefined,
    };
  }
  storeDirs(): string[] {
    return [this.storage];
  }
  async teardown(): Promise<void> {
    await fs.rm(this.storage, { recursive: true, force: true }).catch(() => undefined);
  }
}
