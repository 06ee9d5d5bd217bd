/**
 * `run -it` and `exec -it` through the CLI on a real pty: tmux runs vbuild in a detached session
 * (its own server socket in this file's scratch dir) and the test types into it and reads the
 * screen. The shell in the container must see a terminal of the container's devpts, the pane's
 * size, and follow a resize.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { exec, freshStore, removeStore } from './helpers.ts';
import { cli, vbuild } from './containers-helpers.ts';

let root: string;
let scratch: string;
const tmux = (...args: string[]) => exec('tmux', ['-S', path.join(scratch, 'tmux.sock'), ...args]);
const screen = async (t: string) => (await tmux('capture-pane', '-p', '-t', t)).stdout;

async function waitFor(t: string, pred: (s: string) => boolean, ms = 10_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const s = await screen(t);
    if (pred(s)) return s;
    if (Date.now() > end) throw new Error(`screen never matched:\n${s}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A session running `args` under vbuild; the pane stays after the end, showing EXIT=<code>. */
async function session(name: string, args: string[]): Promise<void> {
  const cmd = `VLAB_ROOT='${root}' node '${vbuild}' ${args.join(' ')}; echo EXIT=$?; sleep 30`;
  await tmux('new-session', '-d', '-s', name, '-x', '100', '-y', '30', cmd);
}

beforeAll(async () => {
  root = await freshStore();
  scratch = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-ctr-tty-'));
});
afterAll(async () => {
  await tmux('kill-server').catch(() => undefined); // our own server only
  if (root) {
    await cli(root, ['rm', '-f', 'tty-exec']);
    await removeStore(root);
  }
  if (scratch) await fsp.rm(scratch, { recursive: true, force: true });
});

describe('a pty for the container (-it)', () => {
  it('run -it busybox sh is an interactive shell on a pty of the pane size; its exit code passed', async () => {
    await session('run', ['run', '-it', '--rm', 'busybox', 'sh']);
    await waitFor('run', (s) => s.includes('#'));
    const size = (await tmux('display', '-p', '-t', 'run', '#{pane_height} #{pane_width}')).stdout.trim();
    await tmux('send-keys', '-t', 'run', 'tty; stty size; echo $((6*7))', 'Enter');
    const s = await waitFor('run', (x) => /^42$/m.test(x));
    expect(s).toMatch(/^\/dev\/pts\/0$/m);
    expect(s).toContain(`\n${size}\n`);
    await tmux('send-keys', '-t', 'run', 'exit 3', 'Enter');
    await waitFor('run', (x) => x.includes('EXIT=3'));
  });

  it('exec -it CONTAINER sh enters a running container on its own pty; a resize is followed', async () => {
    const d = await cli(root, ['run', '-d', '--name', 'tty-exec', 'busybox', 'sleep', '1000']);
    expect(d.code).toBe(0);
    await session('exec', ['exec', '-it', 'tty-exec', 'sh']);
    await waitFor('exec', (s) => s.includes('#'));
    await tmux('send-keys', '-t', 'exec', 'tty; cat /proc/1/cmdline; echo; echo $((6*7))', 'Enter');
    const s = await waitFor('exec', (x) => /^42$/m.test(x));
    expect(s).toMatch(/^\/dev\/pts\/0$/m);
    expect(s).toContain('sleep1000');
    await tmux('resize-window', '-t', 'exec', '-x', '90', '-y', '20');
    await tmux('send-keys', '-t', 'exec', 'stty size', 'Enter');
    const size = (await tmux('display', '-p', '-t', 'exec', '#{pane_height} #{pane_width}')).stdout.trim();
    await waitFor('exec', (x) => x.includes(`\n${size}\n`));
    await tmux('send-keys', '-t', 'exec', 'exit 4', 'Enter');
    await waitFor('exec', (x) => x.includes('EXIT=4'));
  });
});
