/**
 * `vbuild` as users run it, for the registry bench: the npm bin packages/core/bin/vbuild (the
 * native client handing each command to a warm server, src/cli/server.ts), the server started
 * once, untimed, and stopped by pid at the end. With `prof`, `node --cpu-prof bin/vbuild.js`
 * instead: a profile needs a process per command (the server would not write one).
 */
import path from 'node:path';
import { VbuildServer } from './vbuild-server.ts';

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
  const srv = new VbuildServer(repo, path.join(dataDir, 'server-registry-cli'));
  await srv.warm();
  // NODE_OPTIONS (the bench's --conditions=source) acts on node: the client would run direct
  const env = { VLAB_SERVER_DIR: srv.dir, VLAB_NO_SERVER: '', NODE_OPTIONS: '' };
  return { argv: (a) => [srv.bin, ...a], env, warm: true, stop: () => srv.stop() };
}
