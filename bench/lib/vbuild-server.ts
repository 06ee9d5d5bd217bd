/**
 * The `vbuild` a user runs, `packages/core/bin/vbuild` (the native client and its warm server,
 * native/vbuild-client.c and src/cli/server.ts), for the benches: a server directory of its own,
 * the env that lets the client use the server (or not), the server started once before timing and
 * stopped by its pid at the end. Used by the build, container and registry benches.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { timed } from './measure.ts';

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

  /** The first command starts the server (and runs direct); waits until it listens. */
  async warm(extra: NodeJS.ProcessEnv = {}): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    await fs.chmod(this.dir, 0o700);
    await timed([this.bin, '--version'], { env: this.env(true, extra) });
    for (let i = 0; i < 100 && !(await this.pid()); i++) await new Promise((r) => setTimeout(r, 100));
    if (!(await this.pid())) throw new Error(`the vbuild server did not start (see ${this.dir}/*.log)`);
  }

  async stop(): Promise<void> {
    for (const pid of await this.pids())
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* gone already (idle exit) */
      }
  }
}
