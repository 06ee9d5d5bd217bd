/**
 * A private dockerd for one test file: its own data root, exec root, pidfile and socket in a temp
 * dir, no iptables, no bridge (containers get `--network none`), containers' cgroups under a
 * parent of our own; stopped by its pid, its cgroups and dirs removed. Start takes a second or two.
 */
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { exec } from './helpers.ts';

export interface Dockerd {
  /** Run the docker client against this daemon (`buildkit`: `docker build` is BuildKit, DOCKER_BUILDKIT=1). */
  docker(args: string[], opts?: { cwd?: string; buildkit?: boolean }): Promise<{ stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

/** Why dockerd cannot run here, or undefined. */
export function dockerdMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'dockerd needs root';
  try {
    execFileSync('sh', ['-c', 'command -v dockerd'], { stdio: 'pipe' });
  } catch {
    return 'dockerd is not installed (apt-get install docker.io)';
  }
  return undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function removeCgroups(name: string): Promise<void> {
  const base = '/sys/fs/cgroup';
  const dirs = [path.join(base, name), ...fs.readdirSync(base).map((c) => path.join(base, c, name))];
  for (const d of dirs) {
    if (!fs.existsSync(d)) continue;
    await exec('find', [d, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';']).catch(() => undefined);
  }
}

export async function startDockerd(): Promise<Dockerd> {
  // short: the containerd socket under the exec root must fit a unix socket path
  const dir = await fsp.mkdtemp('/tmp/vdk-');
  const sock = path.join(dir, 'sock');
  const pidfile = path.join(dir, 'pid');
  const cgroup = `vlab-dockertest-${process.pid}`;
  const log = fs.openSync(path.join(dir, 'log'), 'w');
  const child = spawn(
    'dockerd',
    [
      '--data-root',
      path.join(dir, 'root'),
      '--exec-root',
      path.join(dir, 'exec'),
      '--pidfile',
      pidfile,
      '-H',
      `unix://${sock}`,
      '--iptables=false',
      '--ip-masq=false',
      '--bridge=none',
      `--cgroup-parent=${cgroup}`,
    ],
    { stdio: ['ignore', log, log], detached: true },
  );
  fs.closeSync(log);
  // DOCKER_BUILDKIT=0: `docker build` is 20.10's classic builder (no buildx needed).
  const env = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_BUILDKIT: '0' };
  // /usr/bin/docker is Debian's 20.10 client; another client on PATH negotiates the API down.
  const clients = ['/usr/bin/docker', 'docker'];
  let client: string | undefined;
  const stop = async () => {
    const pid = Number(await fsp.readFile(pidfile, 'utf8').catch(() => String(child.pid)));
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone already */
    }
    for (let i = 0; i < 100; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        break;
      }
      await sleep(100);
    }
    await removeCgroups(cgroup);
    await exec('rm', ['-rf', dir]);
  };
  for (let i = 0; i < 150 && !client; i++) {
    if (child.exitCode !== null) break;
    for (const c of clients) {
      if (!fs.existsSync(sock)) break;
      const ok = await exec(c, ['version'], { env }).then(
        () => true,
        () => false,
      );
      if (ok) {
        client = c;
        break;
      }
    }
    if (!client) await sleep(200);
  }
  if (!client) {
    const tail = (await fsp.readFile(path.join(dir, 'log'), 'utf8').catch(() => '')).split('\n').slice(-8).join('\n');
    await stop();
    throw new Error(`dockerd did not start:\n${tail}`);
  }
  const docker = client;
  return {
    docker: (args, opts = {}) =>
      exec(docker, args, {
        env: opts.buildkit ? { ...env, DOCKER_BUILDKIT: '1' } : env,
        cwd: opts.cwd,
        maxBuffer: 64 << 20,
      }),
    stop,
  };
}
