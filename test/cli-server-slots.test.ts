/**
 * The native client's way through the server slots when a slot does not behave: a busy slot that
 * closes before the client's request is all sent (it must send the client to the next slot, not
 * run it direct), a stopped server (the client waits a bounded time for its first answer, then
 * tries the next slot; the stopped server, once continued, does not run the abandoned command), and
 * Ctrl-C / SIGTERM while the client waits for that answer (they end it).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshStore, makeContext, removeStore } from './helpers.ts';
import {
  alive,
  baseEnv,
  BIN,
  built,
  install,
  served,
  serverPid,
  srvDir,
  uninstall,
  until,
  vb,
  warm,
} from './cli-server-harness.ts';

let store: string;
const spares = [1, 2, 3];
const spareServed = () => spares.reduce((n, k) => n + served(srvDir, k), 0);
const images = (env: NodeJS.ProcessEnv = {}) => vb(['images', '--root', store], { fast: true, env });

/**
 * The client with its output in a file, awaited to its exit: the fds it passed to a stopped server
 * stay in that server's socket queue until it runs again, so a pipe's reader would wait for them.
 */
async function toExit(
  args: string[],
  kill?: NodeJS.Signals,
): Promise<{ code: number | null; signal: string | null; out: string }> {
  const file = path.join(os.tmpdir(), `vlab-slots-${process.pid}-${Date.now()}`);
  const fd = fs.openSync(file, 'w+');
  try {
    const env = { ...baseEnv, VLAB_SERVER_DIR: srvDir, VLAB_NO_SERVER: '' };
    const child = spawn(BIN, args, { env, stdio: ['ignore', fd, fd] });
    if (kill) setTimeout(() => child.kill(kill), 300);
    const [code, signal] = await new Promise<[number | null, string | null]>((r) =>
      child.on('exit', (c, s) => r([c, s])),
    );
    return { code, signal, out: fs.readFileSync(file, 'utf8') };
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}

/** Until a spare slot serves a command (the first that finds none starts it and runs direct). */
async function aSpare(): Promise<void> {
  const before = spareServed();
  for (let i = 0; i < 20 && spareServed() === before; i++) expect((await images()).code).toBe(0);
  expect(spareServed()).toBeGreaterThan(before);
}

describe.skipIf(!built)('vbuild client: slots that do not answer', () => {
  beforeAll(async () => {
    await install();
    store = await freshStore();
    await warm();
  });
  afterAll(async () => {
    const pid = serverPid();
    if (alive(pid)) process.kill(pid!, 'SIGCONT');
    await uninstall();
    if (store) await removeStore(store);
  });

  it('a busy slot that closes before a large request is sent sends the client to the next slot', async () => {
    const slow = await makeContext({ Dockerfile: 'FROM busybox:latest\nRUN sleep 60\n' });
    let running = false;
    let done!: () => void;
    const first = vb(['build', '--no-cache', '--progress', 'plain', '--root', store, slow], {
      fast: true,
      onStderr: (e) => (running ||= e.includes('cache miss')),
      interruptWhen: new Promise<void>((r) => (done = r)),
    });
    try {
      await until('the first command to run', () => running);
      await aSpare();
      // 400 kB of environment: more than the socket buffer, so the busy slot 0 answers "B" and
      // closes while the client is still sending (EPIPE on a later chunk)
      const big = Object.fromEntries([1, 2, 3, 4].map((i) => [`VLAB_TEST_BIG${i}`, 'x'.repeat(100_000)]));
      const before = spareServed();
      const r = await images(big);
      expect(r.code, r.stderr).toBe(0);
      expect(spareServed(), 'served by a spare slot, not run direct').toBe(before + 1);
    } finally {
      done();
      await first;
      await fsp.rm(slow, { recursive: true });
    }
  });

  it('a stopped server: the client gives up on it after a bounded wait and the next slot serves', async () => {
    const pid = (await warm())!;
    const spareUp = spares.some((k) => alive(serverPid(srvDir, k))); // test 1's spare, if still there
    const mine = served();
    const before = spareServed();
    process.kill(pid, 'SIGSTOP');
    try {
      const t0 = Date.now();
      const r = await toExit(['images', '--root', store]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain('busybox:latest');
      expect(Date.now() - t0).toBeLessThan(8000);
      if (spareUp) expect(spareServed()).toBe(before + 1);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // continued, it finds the client gone: the abandoned command is not run there
    await new Promise((r) => setTimeout(r, 500));
    expect(served()).toBe(mine);
    expect(alive(pid)).toBe(true);
  }, 20_000);

  it.each(['SIGINT', 'SIGTERM'] as const)(
    '%s while the client waits for a stopped server ends it',
    async (sig) => {
      const pid = (await warm())!;
      process.kill(pid, 'SIGSTOP');
      try {
        const t0 = Date.now();
        const r = await toExit(['images', '--root', store], sig);
        expect(r.signal).toBe(sig);
        expect(Date.now() - t0).toBeLessThan(2500); // before the wait's own bound
      } finally {
        process.kill(pid, 'SIGCONT');
      }
    },
    20_000,
  );
});
