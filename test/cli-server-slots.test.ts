/**
 * The native client's way through the server slots when a slot is busy: a busy slot that closes
 * before the client's request is all sent must send the client to the next slot, not run it direct.
 * (A slot that does not answer at all: cli-server-handshake.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshStore, removeStore } from './helpers.ts';
import {
  holdSlot,
  alive,
  built,
  install,
  served,
  serverPid,
  srvDir,
  uninstall,
  vb,
  warm,
} from './cli-server-harness.ts';

let store: string;
const spares = [1, 2, 3];
const spareServed = () => spares.reduce((n, k) => n + served(srvDir, k), 0);
const images = (env: NodeJS.ProcessEnv = {}) => vb(['images', '--root', store], { fast: true, env });

/** Until a spare slot serves a command (the first that finds none starts it and runs direct). */
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
