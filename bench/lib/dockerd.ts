/**
 * A private dockerd for one bench script: its own data root, exec root, pidfile and socket under
 * `dir` (`--iptables=false --bridge=none`, containers get `--network none`), stopped by its pid.
 * Client: Debian's /usr/bin/docker (20.10, the daemon's own version).
 */
import { spawn } from 'node:child_process';
import { openSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { exists, spawnCollect, tail } from './measure.ts';

export const DOCKER_CLIENT = '/usr/bin/docker';

export interface BenchDockerd {
  /** argv of the client against this daemon (for timing). */
  argv(args: string[]): string[];
  run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  version: string;
  stop(): Promise<void>;
}

export async function startBenchDockerd(dir: string): Promise<BenchDockerd> {
  if (!(await exists('/usr/sbin/dockerd'))) throw new Error('dockerd is not installed (apt-get install docker.io)');
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true });
  // the containerd socket under the exec root must fit a unix socket path: keep it short
  const execRoot = await fs.mkdtemp('/run/vlab-cb-');
  const sock = path.join(execRoot, 'd.sock');
  const pidfile = path.join(dir, 'dockerd.pid');
  const logFile = path.join(dir, 'dockerd.log');
  const out = openSync(logFile, 'w');
  // prettier-ignore
  const proc = spawn('/usr/sbin/dockerd', [
    '--data-root', path.join(dir, 'root'), '--exec-root', execRoot, '--pidfile', pidfile,
    '-H', `unix://${sock}`, '--iptables=false', '--ip6tables=false', '--bridge=none', '--ip-masq=false',
    '--containerd-namespace', 'vlabcb', '--containerd-plugins-namespace', 'vlabcb-plugins',
  ], { stdio: ['ignore', out, out] });
  const argv = (args: string[]) => [DOCKER_CLIENT, '-H', `unix://${sock}`, ...args];
  const run = (args: string[]) => spawnCollect(argv(args));
  const stop = async () => {
    if (proc.exitCode === null) {
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 20_000))]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    }
    await fs.rm(execRoot, { recursive: true, force: true }).catch(() => undefined);
  };
  const t0 = Date.now();
  for (;;) {
    if (proc.exitCode !== null) {
      await stop();
      throw new Error(`dockerd exited ${proc.exitCode}: ${tail(await fs.readFile(logFile, 'utf8'))}`);
    }
    if ((await run(['version'])).code === 0) break;
    if (Date.now() - t0 > 60_000) {
      await stop();
      throw new Error('dockerd did not answer within 60 s');
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  const v = await run(['version', '--format', '{{.Server.Version}}']);
  return { argv, run, version: v.stdout.trim(), stop };
}
