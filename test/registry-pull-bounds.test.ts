/**
 * A pull refuses, with a code and the store as it was: a gzip bomb (a layer that inflates past
 * what the store may take: VLAB_PULL_MAX_BYTES here, its free space by default), on each gunzip
 * path (a worker with ISA-L or zlib, the main thread for layers under 1 MiB); and a layer of
 * 1 MiB or more with a flipped byte (a worker's layer: the code must cross the worker boundary).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pull } from '@vlab/image';
import { registryMissing, startRegistry, type TestRegistry } from './registry-fixture.ts';
import { blobFiles, gunzipEngines, putImage, putLayers, sha, useEngine } from './registry-images.ts';
import { startProxy, type FaultProxy } from './registry-proxy.ts';

const missing = registryMissing();
if (missing) console.warn(`registry pull-bounds tests skipped: ${missing}`);

describe.skipIf(missing)('registry pull: bounded inflate, codes from the worker', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let root: string;
  const okTar = Buffer.from('a fine layer '.repeat(1000));
  // 1 MiB of noise keeps the compressed blob over 1 MiB (a worker); 24 MiB of zeros is the bomb
  const bigBomb = Buffer.concat([randomBytes(1 << 20), Buffer.alloc(24 << 20)]);
  const smallBomb = Buffer.alloc(24 << 20); // ~24 kB of gzip: the main thread
  const bigTar = Buffer.concat([randomBytes(1536 << 10), Buffer.from('text '.repeat(50_000))]);
  // ~64 KiB of gzip: read whole into memory (blob-get.ts), over the proxy's 4 kB so it is faulted
  const smallTar = Buffer.concat([randomBytes(64 << 10), Buffer.from('text '.repeat(1000))]);

  beforeAll(async () => {
    reg = await startRegistry();
    proxy = await startProxy(reg.host);
    await putImage(reg, 'ok', zlib.gzipSync(okTar), sha(okTar));
    await putImage(reg, 'bomb-big', zlib.gzipSync(bigBomb, { level: 1 }), sha(bigBomb));
    await putImage(reg, 'bomb-small', zlib.gzipSync(smallBomb), sha(smallBomb));
    await putImage(reg, 'big', zlib.gzipSync(bigTar, { level: 1 }), sha(bigTar));
    await putImage(reg, 'small', zlib.gzipSync(smallTar), sha(smallTar));
    // three small-blob layers of 7 MiB each: each under a 16 MiB store's bound, together over it
    const sevens = [1, 2, 3].map((i) => Buffer.alloc(7 << 20, i));
    await putLayers(
      reg,
      'three-sevens',
      sevens.map((t) => ({ blob: zlib.gzipSync(t), diffId: sha(t) })),
    );
  });
  afterEach(async () => {
    delete process.env.VLAB_GUNZIP;
    delete process.env.VLAB_PULL_MAX_BYTES;
    proxy.fault = 'none';
    if (root) await fsp.rm(root, { recursive: true, force: true });
  });
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
  });

  it.each(gunzipEngines())(
    '%s: a gzip bomb is refused (E_LAYER_TOO_LARGE) and the store keeps what it had',
    async (engine) => {
      root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-pull-bounds-'));
      useEngine(engine);
      await pull(`${reg.host}/l:ok`, { root, tlsVerify: false });
      const before = await blobFiles(root);
      process.env.VLAB_PULL_MAX_BYTES = String(8 << 20);
      for (const tag of ['bomb-big', 'bomb-small'])
        await expect(pull(`${reg.host}/l:${tag}`, { root, tlsVerify: false, retries: 0 })).rejects.toMatchObject({
          code: 'E_LAYER_TOO_LARGE',
          message: expect.stringMatching(/decompresses to more than 8388608 bytes.*VLAB_PULL_MAX_BYTES/),
        });
      expect(await blobFiles(root)).toEqual(before);
      // under the limit the same image is fine
      process.env.VLAB_PULL_MAX_BYTES = String(32 << 20);
      const r = await pull(`${reg.host}/l:bomb-small`, { root, tlsVerify: false });
      expect(r.manifest.layers[0]!.digest).toBe(sha(smallBomb));
    },
  );

  /** `fn` on a store in a 16 MiB tmpfs of its own (root only: a mount). */
  async function onSmallDisk(fn: (store: string) => Promise<void>): Promise<void> {
    root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-pull-bounds-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', root]);
    try {
      await fn(path.join(root, 'store'));
    } finally {
      execFileSync('umount', [root]);
    }
  }
  it.skipIf(process.getuid?.() !== 0)(
    'by default the bound is the store filesystem’s free space (a 16 MiB tmpfs): E_LAYER_TOO_LARGE, not a full disk',
    () =>
      onSmallDisk(async (store) => {
        await expect(
          pull(`${reg.host}/l:bomb-small`, { root: store, tlsVerify: false, retries: 0 }),
        ).rejects.toMatchObject({ code: 'E_LAYER_TOO_LARGE' });
        expect(await blobFiles(store)).toEqual([]);
      }),
  );
  it.skipIf(process.getuid?.() !== 0)(
    'layers that fill the disk together (each under the bound, on the main thread) fail E_NO_SPACE, not as an invalid layer',
    () =>
      onSmallDisk(async (store) => {
        await expect(
          pull(`${reg.host}/l:three-sevens`, { root: store, tlsVerify: false, retries: 0 }),
        ).rejects.toMatchObject({ code: 'E_NO_SPACE' });
      }),
  );
  it('VLAB_PULL_MAX_BYTES that is not a number is E_BAD_ARG', async () => {
    root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-pull-bounds-'));
    process.env.VLAB_PULL_MAX_BYTES = '10MB';
    await expect(pull(`${reg.host}/l:ok`, { root, tlsVerify: false })).rejects.toMatchObject({ code: 'E_BAD_ARG' });
  });

  it.each(gunzipEngines())(
    '%s: a flipped byte in a layer of 1 MiB or more is E_DIGEST_MISMATCH, nothing stored',
    async (engine) => {
      root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-pull-bounds-'));
      useEngine(engine);
      proxy.fault = 'flip';
      const err = await pull(`${proxy.host}/l:big`, { root, tlsVerify: false, retries: 0 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'E_DIGEST_MISMATCH', message: expect.stringMatching(/corrupt or tampered/) });
      expect((err as Error).constructor.name).toBe('VlabError');
      expect(await blobFiles(root)).toEqual([]);
    },
  );

  it('a small layer read into memory: a reset once is asked again; a flipped byte E_DIGEST_MISMATCH, cut short every time E_REGISTRY, nothing stored', async () => {
    const via = async () => {
      if (root) await fsp.rm(root, { recursive: true, force: true });
      root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-pull-bounds-'));
      return pull(`${proxy.host}/l:small`, { root, tlsVerify: false, retries: 1 });
    };
    proxy.fault = 'reset-once'; // first: the proxy cuts each blob once (truncate below counts)
    const seen = proxy.requests.length;
    const r = await via();
    // asked again: from the offset it had (Range), or from 0 when the reset beat the first bytes
    const gets = proxy.requests.slice(seen).filter((q) => q.startsWith('GET ') && q.includes('/blobs/'));
    expect(gets.length).toBeGreaterThan(2); // the config's, the layer's, the layer's again
    expect(r.manifest.layers[0]!.digest).toBe(sha(smallTar));
    expect(sha(await fsp.readFile(path.join(root, 'blobs', 'sha256', sha(smallTar).slice(7))))).toBe(sha(smallTar));
    proxy.fault = 'flip';
    await expect(via()).rejects.toMatchObject({
      code: 'E_DIGEST_MISMATCH',
      message: expect.stringMatching(/tampered/),
    });
    expect(await blobFiles(root)).toEqual([]);
    proxy.fault = 'truncate';
    await expect(via()).rejects.toMatchObject({ code: 'E_REGISTRY', message: expect.stringMatching(/ended early/) });
    expect(await blobFiles(root)).toEqual([]);
  });
});
