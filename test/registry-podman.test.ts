/**
 * podman (Debian's) reads what vbuild pushes: vbuild builds an image whose RUN writes a file and
 * pushes it to docker-registry on 127.0.0.1; podman, with its own --root/--runroot in a temp dir
 * (vfs storage: no mounts left behind; runc: crun refuses limits on hybrid cgroups; cgroupfs),
 * pulls it with the same manifest digest and `podman run` prints the file.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec, freshStore, makeContext, removeStore, repo } from './helpers.ts';
import { registryMissing, startRegistry, type TestRegistry } from './registry-fixture.ts';

const PODMAN = '/usr/bin/podman';
const vbuild = path.join(repo, 'packages/core/bin/vbuild.js');
const globals = (dir: string) => [
  '--root',
  path.join(dir, 'root'),
  '--runroot',
  path.join(dir, 'run'),
  '--storage-driver',
  'vfs',
  '--runtime',
  '/usr/sbin/runc',
  '--cgroup-manager',
  'cgroupfs',
  '--events-backend',
  'none',
];

/** Why podman cannot run here (not installed, or `podman info` fails), or undefined. */
function podmanMissing(): string | undefined {
  const reg = registryMissing();
  if (reg) return reg;
  if (!existsSync(PODMAN)) return `${PODMAN} is not installed (Debian package podman; scripts/setup.sh installs it)`;
  if (!existsSync('/usr/sbin/runc')) return '/usr/sbin/runc is not installed (Debian package runc)';
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vlab-podman-probe-'));
  try {
    execFileSync(PODMAN, [...globals(dir), 'info'], { stdio: 'pipe', timeout: 30_000 });
    return undefined;
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    return `podman cannot run here: ${(err.stderr?.toString() || err.message).trim().slice(0, 300)}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const missing = podmanMissing();
if (missing) console.warn(`podman registry test skipped: ${missing}`);

describe.skipIf(missing)('registry: podman pulls and runs what vbuild pushed', () => {
  let reg: TestRegistry;
  let root: string;
  let dir: string;
  const podman = (args: string[]) => exec(PODMAN, [...globals(dir), ...args]);

  beforeAll(async () => {
    [reg, root, dir] = await Promise.all([
      startRegistry(),
      freshStore(),
      fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-podman-')),
    ]);
  });
  afterAll(async () => {
    if (dir) {
      await podman(['rm', '--all', '--force']).catch(() => undefined);
      await podman(['rmi', '--all', '--force']).catch(() => undefined);
      await fsp.rm(dir, { recursive: true, force: true });
    }
    await reg?.stop();
    if (root) await removeStore(root);
  });

  it('vbuild build + push; podman pull has the same digest; podman run prints the file the RUN wrote', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nRUN echo "written by a vbuild RUN" > /msg.txt\n' });
    const ref = `${reg.host}/vlab/podman:1`;
    const env = { ...process.env, VLAB_ROOT: root, DOCKER_CONFIG: path.join(dir, 'docker') };
    try {
      await exec('node', [vbuild, 'build', '-q', '-t', ref, ctx], { env });
      const pushed = await exec('node', [vbuild, 'push', '-q', ref], { env });
      const digest = pushed.stdout.trim();
      expect(digest).toMatch(/^sha256:[a-f0-9]{64}$/);

      await podman(['pull', '-q', '--tls-verify=false', ref]);
      const { stdout: inspected } = await podman(['image', 'inspect', '--format', '{{.Digest}}', ref]);
      expect(inspected.trim()).toBe(digest);
      // podman raises nofile (to 1048576) and nproc by default, which needs CAP_SYS_RESOURCE, not
      // held everywhere (this machine: runc fails with EPERM); low limits are always allowed
      const limits = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];
      const run = ['run', '--rm', '--network', 'none', ...limits, ref, 'cat', '/msg.txt'];
      const { stdout } = await podman(run);
      expect(stdout).toBe('written by a vbuild RUN\n');
    } finally {
      await fsp.rm(ctx, { recursive: true, force: true });
    }
  });
});
