/**
 * Docker as the oracle: Debian's dockerd, started here with its own data root and socket in a
 * temp dir (no iptables, no bridge), runs the same busybox image (`vbuild save` → `docker load`);
 * exit codes and volume behaviour are compared. Skipped, with the reason, where dockerd cannot run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containers, run } from '@vlab/image';
import { exec, freshStore, removeStore } from './helpers.ts';
import { cli } from './containers-helpers.ts';

let root: string;
let dir: string;
let daemon: ChildProcess | undefined;
let skip = '';

const docker = async (...args: string[]): Promise<{ code: number; stdout: string }> => {
  try {
    const r = await exec('docker', ['-H', `unix://${dir}/d.sock`, ...args], { timeout: 30_000 });
    return { code: 0, stdout: r.stdout };
  } catch (e) {
    const x = e as { code: number; stdout: string };
    return { code: typeof x.code === 'number' ? x.code : -1, stdout: x.stdout ?? '' };
  }
};

async function startDockerd(): Promise<string> {
  if (process.getuid?.() !== 0) return 'not root';
  for (const bin of ['/usr/sbin/dockerd', '/usr/bin/containerd'])
    if (!existsSync(bin)) return `${bin} is not installed (apt-get install docker.io)`;
  if (!(await exec('which', ['docker']).catch(() => undefined))) return 'no docker client';
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vd-'));
  // prettier-ignore
  daemon = spawn('/usr/sbin/dockerd', [
    '--data-root', `${dir}/data`, '--exec-root', `${dir}/exec`, '-H', `unix://${dir}/d.sock`,
    '--pidfile', `${dir}/pid`, '--iptables=false', '--ip6tables=false', '--bridge=none', '--ip-masq=false',
  ], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    if (daemon.exitCode !== null) return `dockerd exited with ${daemon.exitCode}`;
    if ((await docker('version')).code === 0) return '';
    await new Promise((r) => setTimeout(r, 200));
  }
  return 'dockerd did not answer within 20 s';
}

async function stopDockerd(): Promise<void> {
  if (!daemon?.pid) return;
  const containerd = Number(await fsp.readFile(`${dir}/exec/containerd/containerd.pid`, 'utf8').catch(() => '0'));
  const ended = new Promise((r) => daemon!.once('exit', r));
  if (daemon.exitCode === null) daemon.kill('SIGTERM');
  await Promise.race([ended, new Promise((r) => setTimeout(r, 15_000))]);
  if (daemon.exitCode === null) daemon.kill('SIGKILL');
  // its managed containerd stops with it; make sure, by pid
  for (let i = 0; containerd && i < 50; i++) {
    try {
      process.kill(containerd, 0);
    } catch {
      break;
    }
    if (i === 49) process.kill(containerd, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  root = await freshStore();
  skip = await startDockerd().catch((e: Error) => e.message);
  if (skip) {
    console.warn(`containers-docker: skipped, docker is not the oracle here: ${skip}`);
    return;
  }
  const saved = await cli(root, ['save', '-o', `${dir}/bb.tar`, 'busybox']);
  expect(saved.code, saved.stderr).toBe(0);
  expect((await docker('load', '-i', `${dir}/bb.tar`)).code).toBe(0);
}, 120_000);
afterAll(async () => {
  await stopDockerd();
  if (dir) {
    // dockerd unmounts its own on shutdown; anything left stays visible to the umount below
    await exec('sh', ['-c', `grep -o ' ${dir}[^ ]*' /proc/self/mountinfo | xargs -r -n1 umount -l`]).catch(() => 0);
    await fsp.rm(dir, { recursive: true, force: true });
  }
  for (const c of await containers.list({ all: true, root }).catch(() => []))
    await containers.remove(c.config.id, { force: true, volumes: true, root }).catch(() => undefined);
  await removeStore(root);
}, 60_000);

describe('containers against docker', () => {
  it('exit codes of a failing, a missing and a non-executable command are docker run’s', async (ctx) => {
    if (skip) return ctx.skip();
    for (const cmd of [['sh', '-c', 'exit 3'], ['nonexistent'], ['/etc/passwd'], ['sh', '-c', 'kill -9 $$']]) {
      const theirs = await docker('run', '--rm', '--network', 'none', 'busybox:latest', ...cmd);
      const ours = await run({ root, image: 'busybox', cmd, autoRemove: true });
      expect(ours.exitCode, cmd.join(' ')).toBe(theirs.code);
    }
  });

  it('a named volume keeps its data after rm, as in docker', async (ctx) => {
    if (skip) return ctx.skip();
    const seq = async (r: (cmd: string[]) => Promise<string>) => {
      await r(['sh', '-c', 'echo kept > /v/f']);
      return r(['cat', '/v/f']);
    };
    const theirs = await seq(
      async (cmd) => (await docker('run', '--rm', '--network', 'none', '-v', 'dv:/v', 'busybox:latest', ...cmd)).stdout,
    );
    const ours = await seq(async (cmd) => {
      let s = '';
      await run({ root, image: 'busybox', cmd, volumes: ['dv:/v'], autoRemove: true, onOutput: (_, c) => (s += c) });
      return s;
    });
    expect(ours).toBe(theirs);
    expect(ours).toBe('kept\n');
  });
});
