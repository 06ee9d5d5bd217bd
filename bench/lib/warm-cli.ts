/**
 * `vbuild` as users run it, for the registry bench: the npm bin packages/core/bin/vbuild (the
 * native client handing each command to a warm server, src/cli/server.ts), the server started
 * once, untimed, and stopped by pid at the end. With `prof`, `node --cpu-prof bin/vbuild.js`
 * instead: a profile needs a process per command (the server would not write one).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { sh } from './measure.ts';

export interface WarmCli {
  argv(args: string[]): string[];
  env: Record<string, string>;
  /** True when commands run on the warm server (false: direct, profiled). */
  warm: boolean;
  stop(): Promise<void>;
}

export async function warmCli(repo: string, dataDir: string, prof?: string): Promise<WarmCli> {
  const js = path.join(repo, 'packages/core/bin/vbuild.js');
  if (prof)
    return {
      argv: (a) => ['node', '--cpu-prof', '--cpu-prof-dir', prof, js, ...a],
      env: {},
      warm: false,
      stop: async () => {},
    };
  const dir = path.join(dataDir, 'server-registry-cli');
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  await fs.chmod(dir, 0o700);
  // NODE_OPTIONS (the bench's --conditions=source) acts on node: the client would run direct
  const env = { VLAB_SERVER_DIR: dir, VLAB_NO_SERVER: '', NODE_OPTIONS: '' };
  const bin = path.join(repo, 'packages/core/bin/vbuild');
  const pid = async () => {
    const f = (await fs.readdir(dir).catch(() => [])).find((n) => n.endsWith('.pid'));
    return f ? Number(await fs.readFile(path.join(dir, f), 'utf8').catch(() => '')) || undefined : undefined;
  };
  await sh([bin, '--version'], { env: { ...process.env, ...env } }); // starts the server
  for (let i = 0; i < 100 && !(await pid()); i++) await new Promise((r) => setTimeout(r, 100));
  const started = await pid();
  if (!started) throw new Error(`the vbuild server did not start (see ${dir}/*.log)`);
  return {
    argv: (a) => [bin, ...a],
    env,
    warm: true,
    stop: async () => {
      try {
        process.kill(started, 'SIGTERM');
      } catch {
        /* gone already (idle exit) */
      }
    },
  };
}
