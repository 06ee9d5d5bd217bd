/**
 * Debian's docker.io: one dockerd with its own data root, exec root and socket
 * (`--iptables=false --bridge=none`), started by the bench and stopped by pid. Two columns:
 * `buildkit` (DOCKER_BUILDKIT=1) and `docker-classic` (DOCKER_BUILDKIT=0), client /usr/bin/docker,
 * `--network=none`. Peak RSS is dockerd's (VmHWM reset before each build): the builder runs there.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { exists, readHwm, resetHwm, sh, spawnCollect, tail } from '../lib/measure.ts';
import { runStepTimes, type Stamped } from '../lib/steps.ts';
import type { BenchEnv, BuildOutcome, Peer } from './types.ts';

const CLIENT = '/usr/bin/docker';
const SOCK = '/run/vlab-bench-docker.sock';

/** The daemon, shared by both docker columns; started on first setup, stopped on last teardown. */
class Daemon {
  proc?: ChildProcess;
  users = 0;
  dataRoot = '';
  async start(env: BenchEnv): Promise<void> {
    this.users++;
    if (this.proc) return;
    if (!(await exists('/usr/sbin/dockerd'))) throw new Error('dockerd not installed (apt-get install docker.io)');
    this.dataRoot = path.join(env.dataDir, 'docker', 'root');
    const execRoot = '/run/vlab-bench-docker';
    // A fresh data root each bench run: no stale cache, no half-deleted layers from an earlier run.
    await fs.rm(this.dataRoot, { recursive: true, force: true });
    await fs.mkdir(this.dataRoot, { recursive: true });
    const logFile = path.join(env.dataDir, 'docker', 'dockerd.log');
    const out = openSync(logFile, 'w');
    this.proc = spawn(
      '/usr/sbin/dockerd',
      [
        '--data-root',
        this.dataRoot,
        '--exec-root',
        execRoot,
        '--pidfile',
        path.join(env.dataDir, 'docker', 'dockerd.pid'),
        '-H',
        `unix://${SOCK}`,
        '--iptables=false',
        '--ip6tables=false',
        '--bridge=none',
        '--containerd-namespace',
        'vlabbench',
        '--containerd-plugins-namespace',
        'vlabbench-plugins',
      ],
      { stdio: ['ignore', out, out] },
    );
    const t0 = Date.now();
    while (Date.now() - t0 < 60_000) {
      if (this.proc.exitCode !== null)
        throw new Error(`dockerd exited ${this.proc.exitCode}: ${tail(await fs.readFile(logFile, 'utf8'))}`);
      if ((await docker(['version'], {})).code === 0) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    const v = await docker(['version', '--format', '{{.Client.Version}} / {{.Server.Version}}'], {});
    if (v.code) throw new Error(`dockerd did not answer: ${tail(v.stderr)}`);
    env.log(`dockerd up (client / server ${v.stdout.trim()})`);
    for (const t of Object.values(env.bases.dockerTar)) {
      const r = await docker(['load', '-i', t], {});
      if (r.code) throw new Error(`docker load: ${tail(r.stderr)}`);
    }
  }
  async stop(): Promise<void> {
    if (--this.users > 0 || !this.proc) return;
    const p = this.proc;
    this.proc = undefined;
    if (p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await Promise.race([gone, new Promise((r) => setTimeout(r, 20_000))]);
    if (p.exitCode === null) p.kill('SIGKILL');
  }
}
const daemon = new Daemon();

function docker(args: string[], env: NodeJS.ProcessEnv, lines?: Stamped[]) {
  return spawnCollect([CLIENT, '-H', `unix://${SOCK}`, ...args], { env: { ...process.env, ...env }, lines });
}

export class DockerPeer implements Peer {
  private tags = new Set<string>();
  constructor(
    public name: string,
    private buildkit: boolean,
  ) {}
  async setup(env: BenchEnv): Promise<void> {
    await daemon.start(env);
    if (this.buildkit) {
      // Probe: Debian's dockerd must have the BuildKit builder compiled in.
      const dir = await fs.mkdtemp(path.join(env.dataDir, 'probe-'));
      await fs.writeFile(path.join(dir, 'Dockerfile'), 'FROM busybox:latest\n');
      const r = await this.build(dir, 'vlabbench-probe:latest');
      await fs.rm(dir, { recursive: true, force: true });
      if (!r.ok) throw new Error(`buildkit build failed: ${r.error}`);
    }
  }
  async reset(): Promise<void> {
    for (const t of this.tags) await docker(['image', 'rm', '-f', t], {});
    this.tags.clear();
    await docker(['image', 'prune', '-f'], {});
    if (this.buildkit) await docker(['builder', 'prune', '-af'], {});
  }
  async build(context: string, tag: string): Promise<BuildOutcome> {
    const full = `${tag}-${this.buildkit ? 'bk' : 'classic'}`;
    this.tags.add(full);
    const pid = daemon.proc!.pid!;
    await resetHwm([pid]);
    const t0 = performance.now();
    const lines: Stamped[] = [];
    const r = await docker(
      ['build', '--network=none', '--progress=plain', '-t', full, '-f', path.join(context, 'Dockerfile'), context],
      { DOCKER_BUILDKIT: this.buildkit ? '1' : '0' },
      lines,
    );
    const wall = (performance.now() - t0) / 1000;
    const out = r.stdout + r.stderr;
    const ids = (re: RegExp) => new Set([...out.matchAll(re)].map((m) => m[1])).size;
    const cached = this.buildkit ? ids(/^#(\d+) CACHED$/gm) : (out.match(/Using cache/g) ?? []).length;
    const steps = this.buildkit
      ? ids(/^#(\d+) \[[^\]]*\d+\/\d+\] (?:RUN|COPY|ADD)/gm)
      : (out.match(/^Step \d+\/\d+ : (RUN|COPY|ADD)/gm) ?? []).length;
    return {
      ok: r.code === 0,
      wall,
      rss: await readHwm([pid]),
      cached,
      ran: Math.max(0, steps - cached),
      steps: this.buildkit ? runStepTimes(lines) : undefined,
      error: r.code ? tail(out) : undefined,
    };
  }
  storeDirs(): string[] {
    return [daemon.dataRoot];
  }
  async teardown(): Promise<void> {
    await this.reset().catch(() => undefined);
    await daemon.stop();
  }
}

export const dockerDaemonVersion = () => sh([CLIENT, '-H', `unix://${SOCK}`, 'version']);
