/**
 * The native client's way through the server slots when a slot is busy: the client that finds a
 * slot with no server starts it and runs its command there once it listens (not direct beside its
 * start-up), and the spare exits by itself when idle; a busy slot that closes before the client's
 * request is all sent must send the client to the next slot, not run it direct.
 * (A slot that does not answer at all: cli-server-handshake.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshStore, removeStore } from './helpers.ts';
import fs from 'node:fs';
import {
  holdSlot,
  alive,
  built,
  install,
  served,
  serverPid,
  serverFile,
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

/** Until a spare slot serves a command (the first that finds none starts it and runs there). */
async function aSpare(): Promise<void> {
  const before = spareServed();
  for (let i = 0; i < 20 && spareServed() === before; i++) expect((await images()).code).toBe(0);
  expect(spareServed()).toBeGreaterThan(before);
}

describe.skipIf(!built)('vbuild client: a busy slot', () => {
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

  it('the client that starts a spare runs in it; with no time to wait it runs direct; an idle spare exits', async () => {
    const slot0 = await holdSlot(store);
    const spare = () => serverPid(srvDir, 1);
    try {
      // no time to wait for the start-up: direct, as before (the spare is started for the next one)
      let before = spareServed();
      expect((await images({ VLAB_SERVER_START_MS: '0', VLAB_SERVER_IDLE: '1' })).code).toBe(0);
      expect(spareServed(), 'run direct').toBe(before);
      await until('the spare to listen', () => alive(spare()));
      const pid = spare()!;
      await until('the idle spare to exit', () => !alive(pid), 5000);
      expect(
        fs.readdirSync(srvDir).filter((f) => /-1\.(sock|pid)$/.test(f)),
        'its socket and pid file gone',
      ).toEqual([]);
      // the default: the first command that finds no spare starts it and is its first command
      before = spareServed();
      expect((await images({ VLAB_SERVER_IDLE: '1' })).code).toBe(0);
      expect(spareServed(), 'served by the spare it started').toBe(before + 1);
      expect(fs.readFileSync(serverFile(srvDir, '.log', 1)!, 'utf8')).toContain('idle exit after 1 s');
      const second = spare()!;
      await until('the idle spare to exit', () => !alive(second), 5000);
    } finally {
      await slot0.release();
    }
  });

  it('a busy slot that closes before a large request is sent sends the client to the next slot', async () => {
    const slot0 = await holdSlot(store);
    try {
      await aSpare();
      // 400 kB of environment: more than the socket buffer, so the busy slot 0 answers "B" and
      // closes while the client is still sending (EPIPE on a later chunk)
      const big = Object.fromEntries([1, 2, 3, 4].map((i) => [`VLAB_TEST_BIG${i}`, 'x'.repeat(100_000)]));
      const before = spareServed();
      const r = await images(big);
      expect(r.code, r.stderr).toBe(0);
      expect(spareServed(), 'served by a spare slot, not run direct').toBe(before + 1);
    } finally {
      await slot0.release();
    }
  });
});
