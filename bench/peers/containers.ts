/**
 * containers/storage builders: `buildah bud --layers` (isolation chroot, and oci with runc: crun
 * fails on this machine's hybrid cgroups) and `podman build --layers` (runc). Each gets its own
 * --root/--runroot under bench/.data; cold = remove every image and load the bases again (untimed).
 * Peak RSS = the CLI process tree (/usr/bin/time), which is where these builders run.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { exists, spawnCollect, tail, timed } from '../lib/measure.ts';
import type { BenchEnv, BuildOutcome, Peer } from './types.ts';

export class ContainersPeer implements Peer {
  private env!: BenchEnv;
  private root = '';
  private runroot = '';
  constructor(
    public name: string,
    private tool: 'buildah' | 'podman',
    private isolation: 'chroot' | 'oci',
  ) {}
  private global(): string[] {
    const g = ['--root', this.root, '--runroot', this.runroot, '--storage-driver', 'overlay'];
    if (this.tool === 'podman')
      g.push('--runtime', '/usr/sbin/runc', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none');
    return g;
  }
  private cmd(args: string[]) {
    return spawnCollect([`/usr/bin/${this.tool}`, ...this.global(), ...args]);
  }
  async setup(env: BenchEnv): Promise<void> {
    if (!(await exists(`/usr/bin/${this.tool}`))) throw new Error(`${this.tool} not installed`);
    this.env = env;
    this.root = path.join(env.dataDir, 'stores', this.name);
    this.runroot = `/run/vlab-bench-${this.name}`;
    await fs.mkdir(this.root, { recursive: true });
    await this.reset();
  }
  async reset(): Promise<void> {
    if (this.tool === 'buildah') await this.cmd(['rm', '--all']);
    else await this.cmd(['rm', '--all', '--force']);
    const r = await this.cmd(['rmi', '--all', '--force']);
    if (r.code && !/no images|image not known/i.test(r.stderr)) throw new Error(`${this.tool} rmi: ${tail(r.stderr)}`);
    for (const [name, tar] of Object.entries(this.env.bases.dockerTar)) {
      const args = this.tool === 'buildah' ? ['pull', '-q', `docker-archive:${tar}`] : ['load', '-q', '-i', tar];
      const p = await this.cmd(args);
      if (p.code) throw new Error(`${this.tool} load ${name}: ${tail(p.stderr)}`);
      const id = p.stdout
        .trim()
        .split('\n')
        .pop()!
        .replace(/^Loaded image(\(s\))?:\s*/, '');
      await this.cmd(['tag', id, `docker.io/library/${name}:latest`]);
    }
  }
  async build(context: string, tag: string): Promise<BuildOutcome> {
    const args = this.tool === 'buildah' ? ['bud', '--layers', '--isolation', this.isolation] : ['build', '--layers'];
    if (this.isolation === 'oci' && this.tool === 'buildah') args.push('--runtime', '/usr/sbin/runc');
    args.push(
      '--pull-never',
      ...(this.isolation === 'chroot' ? [] : ['--network', 'none']),
      '-t',
      `${tag}-${this.name}`,
      '-f',
      path.join(context, 'Dockerfile'),
      context,
    );
    if (this.tool === 'podman') args.splice(args.indexOf('--pull-never'), 1, '--pull=never');
    const r = await timed([`/usr/bin/${this.tool}`, ...this.global(), ...args]);
    const out = r.stdout + r.stderr;
    const cached = (out.match(/--> Using cache/g) ?? []).length;
    const steps = (out.match(/^STEP \d+\/\d+: (RUN|COPY|ADD)/gm) ?? []).length;
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
    return [this.root];
  }
  async teardown(): Promise<void> {
    await this.cmd(['rm', '--all']).catch(() => undefined);
    await this.cmd(['rmi', '--all', '--force']).catch(() => undefined);
    if (this.tool === 'podman') await this.cmd(['system', 'reset', '--force']).catch(() => undefined);
    await fs.rm(this.root, { recursive: true, force: true }).catch(() => undefined);
  }
}
