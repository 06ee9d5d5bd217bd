/**
 * Containers through the OCI executor (runc, VLAB_EXECUTOR=oci or the API's `executor: 'oci'`):
 * the monitor owns `runc run` as conmon does. The same verbs as with vlab-init: foreground exit
 * codes (checked against docker's in containers-docker.test.ts for vlab-init, compared with
 * vlab-init's here), detached run, ps, exec, pause, stop, logs, and a monitor SIGKILLed.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containers, run } from '@vlab/image';
import { exec, freshStore, removeStore } from './helpers.ts';
import { cli, deadOrZombie, stateOf } from './containers-helpers.ts';

const runc = ['/usr/sbin/runc', '/usr/bin/runc'].find((p) => existsSync(p));
const skip = process.getuid?.() !== 0 ? 'not root' : !runc ? 'runc is not installed (apt-get install runc)' : '';
if (skip) console.warn(`containers-oci: skipped: ${skip}`);

let root: string;
const oci = (...args: string[]) => cli(root, args, undefined, { VLAB_EXECUTOR: 'oci' });

beforeAll(async () => {
  if (!skip) root = await freshStore();
});
afterAll(async () => {
  if (!root) return;
  for (const c of await containers.list({ all: true, root }).catch(() => []))
    await containers.remove(c.config.id, { force: true, volumes: true, root }).catch(() => undefined);
  await removeStore(root);
});

describe.skipIf(skip)('containers on runc', () => {
  it('foreground: output, exit codes (failing, missing, not executable, killed) are vlab-init’s', async () => {
    const cmds = [
      ['sh', '-c', 'echo out; echo err >&2; exit 3'],
      ['nonexistent'],
      ['/etc/passwd'],
      ['sh', '-c', 'kill -9 $$'],
    ];
    const with_ = async (executor: 'oci' | 'auto', cmd: string[]) => {
      let out = '';
      const r = await run({ root, image: 'busybox', cmd, executor, autoRemove: true, onOutput: (_, c) => (out += c) });
      return { code: r.exitCode, out: out.includes('out') };
    };
    for (const cmd of cmds) expect(await with_('oci', cmd), cmd.join(' ')).toEqual(await with_('auto', cmd));
    const c = await run({ root, image: 'busybox', cmd: ['true'], executor: 'oci' });
    expect((await containers.inspect(c.id, { root })).config.executor).toBe('oci');
    await containers.remove(c.id, { root });
  });

  it('run -d: ps, exec, pause, stop with the exit code, logs; nothing left in runc or mounted', async () => {
    // started by the CLI (VLAB_EXECUTOR, a process that exits), then the API: its verbs do not
    // depend on the executor, the container's record says which one started it
    const script = 'trap "echo bye; exit 5" TERM; echo up; while :; do sleep 0.1; done';
    const started = await oci('run', '-d', '--name', 'r1', 'busybox', 'sh', '-c', script);
    expect(started.code, started.stderr).toBe(0);
    const id = started.stdout.trim();
    const state = await stateOf(root, id);
    const { stdout: cmdline } = await exec('cat', [`/proc/${String(state.pid)}/cmdline`]);
    expect(cmdline).toContain('sh\0-c\0trap'); // pid 1, not a runc stage
    const inspect = () => containers.inspect('r1', { root });
    expect((await inspect()).state.status).toBe('running');
    let out = '';
    await containers.exec('r1', ['cat', '/proc/1/cmdline'], { root, onOutput: (_, c) => (out += c) });
    expect(out).toContain('while');
    await containers.pause('r1', { root });
    expect((await inspect()).paused).toBe(true);
    await containers.unpause('r1', { root });
    await containers.stop('r1', { root });
    expect((await inspect()).state).toMatchObject({ status: 'exited', exitCode: 5 });
    expect((await containers.logs('r1', { root })).map((e) => e.log).join('')).toBe('up\nbye\n');
    await containers.remove('r1', { root });
    expect((await exec(runc!, ['--root', '/run/vlab/runc', 'list', '-q'])).stdout).not.toContain('vlabctr-');
    expect((await exec('cat', ['/proc/self/mountinfo'])).stdout).not.toContain(id);
  });

  it('its monitor SIGKILLed: ps shows it exited (-1) and the container is gone with it', async () => {
    const started = await oci('run', '-d', '--name', 'r2', 'busybox', 'sleep', '1000');
    const id = started.stdout.trim();
    const state = await stateOf(root, id);
    process.kill(Number(state.monitorPid), 'SIGKILL');
    for (let i = 0; i < 100 && !deadOrZombie(Number(state.monitorPid)); i++)
      await new Promise((r) => setTimeout(r, 20));
    expect((await containers.inspect('r2', { root })).state).toMatchObject({ status: 'exited', exitCode: -1 });
    for (let i = 0; i < 100 && !deadOrZombie(Number(state.pid)); i++) await new Promise((r) => setTimeout(r, 20));
    expect(deadOrZombie(Number(state.pid))).toBe(true);
    await containers.remove('r2', { root });
    expect((await exec(runc!, ['--root', '/run/vlab/runc', 'list', '-q'])).stdout).not.toContain('vlabctr-');
  });
});
