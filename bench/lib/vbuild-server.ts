/**
 * The `vbuild` a user runs, `packages/core/bin/vbuild` (the native client and its warm server,
 * native/vbuild-client.c and src/cli/server.ts), for the benches: a server directory of its own,
 * the env that lets the client use the server (or not), the server started once before timing and
 * stopped by its pid at the end. Used by the build, container and registry benches.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { timed } from './measure.ts';
import { stopLeftovers } from './leftovers.ts';

export class VbuildServer {
  constructor(
    readonly repo: string,
    /** The server's 0700 directory (its socket, pid, log). */
    readonly dir: string,
  ) {}

  get bin(): string {
    return path.join(this.repo, 'packages/core/bin/vbuild');
  }

  /** The client's env: through the server (`fast`), or direct with VLAB_NO_SERVER=1. */
  env(fast: boolean, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...extra,
      VLAB_SERVER_DIR: this.dir,
      VLAB_NO_SERVER: fast ? '' : '1',
    };
    delete env.NODE_OPTIONS; // acts on node: the client would run direct
    return env;
  }

  /** The first slot's server (HASH.pid; the spares are HASH-K.pid). */
  async pid(): Promise<number | undefined> {
    return (await this.pids(/^[0-9a-f]{8}\.pid$/))[0];
  }

  /** Every running slot's server. */
  async pids(name = /\.pid$/): Promise<number[]> {
    const files = (await fs.readdir(this.dir).catch(() => [])).filter((n) => name.test(n));
    const read = (f: string) => fs.readFile(path.join(this.dir, f), 'utf8').catch(() => '');
    return (await Promise.all(files.map(read))).map(Number).filter((n) => n > 0);
  }

  /** What a server of this dir has on its command line (server.ts: `--vlab-serve BASE LOCKFD`). */
  private get marker(): string {
    return `--vlab-serve ${path.resolve(this.dir)}/`;
  }

  /**
   * The first command starts the server (and runs direct); waits until it listens. A server a
   * killed run left here (on the bundle of that run: setup re-bundles) is stopped first: while it
   * exits it holds its slot's lock, so the command would run direct and start none.
   */
  async warm(extra: NodeJS.ProcessEnv = {}): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    await fs.chmod(this.dir, 0o700);
    await this.stop();
    // pid files of servers that could not remove theirs (killed): none of ours runs now
    for (const f of await fs.readdir(this.dir))
      if (f.endsWith('.pid')) await fs.rm(path.join(this.dir, f), { force: true });
    // a second try: the first command may still meet a server on its way out ("R": it runs direct)
    for (let attempt = 0; attempt < 2 && !(await this.pid()); attempt++) {
      await timed([this.bin, '--version'], { env: this.env(true, extra) });
      for (let i = 0; i < 50 && !(await this.pid()); i++) await new Promise((r) => setTimeout(r, 100));
    }
    if (!(await this.pid())) throw new Error(`the vbuild server did not start (see ${this.dir}/*.log)`);
  }

  /** Stops every slot's server of this dir, by pid, and waits until they are gone. */
  async stop(): Promise<void> {
    await stopLeftovers(await this.pids(), this.marker);
  }
}
