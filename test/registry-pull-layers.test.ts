/**
 * Pulled gzip layers, through each way a pull gunzips them: a worker with ISA-L (the default
 * when packages/overlay/native/vlab-isal.c is built), a worker with zlib (VLAB_GUNZIP=zlib), and
 * the main thread (layers under 1 MiB). Each must store the same tar, and refuse, with nothing stored, a
 * config whose diff_id is not the tar's, a blob that is not gzip, and a gzip stream cut short.
 * The images are written straight into docker-registry, so their blobs can be anything.
 */
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fsck, pull } from '@vlab/image';
import { BlobInfo } from '../packages/core/src/registry/blob-info.ts';
import { sleep, startCli, vbuild } from './torture-helpers.ts';
import { registryMissing, startRegistry, type TestRegistry } from './registry-fixture.ts';
import { blobFiles, gunzipEngines, putImage, putLayers, sha, useEngine } from './registry-images.ts';

const missing = registryMissing();
if (missing) console.warn(`registry pull-layer tests skipped: ${missing}`);

describe.skipIf(missing)('registry pull: gzip layers on every gunzip path', () => {
  let reg: TestRegistry;
  let root: string;
  // Big: half random, half text (a worker); small: text only, under 1 MiB (the main thread).
  const bigTar = Buffer.concat([randomBytes(1 << 20), Buffer.from('layer text '.repeat(100_000))]);
  const smallTar = Buffer.from('small layer '.repeat(20_000));
  const bigGz = zlib.gzipSync(bigTar, { level: 1 });
  // long enough to be killed in the middle of (stored: level 0)
  const hugeTar = randomBytes(64 << 20);
  const hugeGz = zlib.gzipSync(hugeTar, { level: 0 });
  const manyTars = Array.from({ length: 10 }, (_, i) => Buffer.from(`layer ${i} `.repeat(500 + i)));

  beforeAll(async () => {
    reg = await startRegistry();
    const other = zlib.gzipSync(Buffer.from('not the layer'));
    await putImage(reg, 'big', bigGz, sha(bigTar));
    await putImage(reg, 'small', zlib.gzipSync(smallTar), sha(smallTar));
    // two gzip members in one blob (pigz, cat a.gz b.gz): one tar
    const half = bigTar.length >> 1;
    const twoMembers = Buffer.concat([zlib.gzipSync(bigTar.subarray(0, half)), zlib.gzipSync(bigTar.subarray(half))]);
    await putImage(reg, 'members', twoMembers, sha(bigTar));
    await putImage(reg, 'wrong-diffid', bigGz, sha(Buffer.concat([bigTar, other])));
    await putImage(reg, 'not-gzip', randomBytes(1536 << 10), sha(bigTar));
    await putImage(reg, 'cut', bigGz.subarray(0, bigGz.length - 4096), sha(bigTar));
    // the same under 256 KiB (read whole into memory, inflated on the main thread: blob-get.ts)
    const smallGz = zlib.gzipSync(smallTar);
    await putImage(reg, 'small-wrong-diffid', smallGz, sha(Buffer.concat([smallTar, other])));
    await putImage(reg, 'small-not-gzip', randomBytes(64 << 10), sha(smallTar));
    await putImage(reg, 'small-cut', smallGz.subarray(0, smallGz.length - 64), sha(smallTar));
    await putImage(reg, 'huge', hugeGz, sha(hugeTar));
    // enough layers to be named together after one syncfs (pull.ts: BATCH_FROM), one of them bad
    const many = manyTars.map((t) => ({ blob: zlib.gzipSync(t), diffId: sha(t) }));
    await putLayers(reg, 'many', many);
    await putLayers(reg, 'many-bad', [...many.slice(1), { blob: many[0]!.blob, diffId: sha(smallTar) }]);
    // the batched path with a layer long enough to be killed in the middle of
    await putLayers(reg, 'many-huge', [{ blob: hugeGz, diffId: sha(hugeTar) }, ...many.slice(0, 8)]);
  });
  afterEach(async () => {
    delete process.env.VLAB_GUNZIP;
    if (root) await fsp.rm(root, { recursive: true, force: true });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  const engines = gunzipEngines();
  const pullIt = async (engine: string, tag: string) => {
    useEngine(engine);
    root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-pull-layers-'));
    return pull(`${reg.host}/l:${tag}`, { root, tlsVerify: false, retries: 0 });
  };

  it.each(engines)('%s: big, two-member and small layers are stored as their tars', async (engine) => {
    for (const [tag, tar] of [
      ['big', bigTar],
      ['members', bigTar],
      ['small', smallTar],
    ] as const) {
      const r = await pullIt(engine, tag);
      expect(r.manifest.layers[0]!.digest).toBe(sha(tar));
      // the stored file's own bytes (toEqual on 2 MiB Buffers takes seconds)
      expect(sha(await fsp.readFile(path.join(root, 'blobs', 'sha256', sha(tar).slice(7))))).toBe(sha(tar));
      await fsp.rm(root, { recursive: true, force: true });
    }
  });

  it.each(engines)('%s: a wrong diff_id, a blob that is not gzip, a cut gzip: refused, no blob', async (engine) => {
    for (const [tag, code, msg] of [
      ['wrong-diffid', 'E_DIGEST_MISMATCH', /does not match expected/],
      ['not-gzip', 'E_LAYER_INVALID', /does not decompress as .*tar\+gzip/],
      ['cut', 'E_LAYER_INVALID', /does not decompress/],
      ['small-wrong-diffid', 'E_DIGEST_MISMATCH', /does not match expected/],
      ['small-not-gzip', 'E_LAYER_INVALID', /does not decompress as .*tar\+gzip/],
      ['small-cut', 'E_LAYER_INVALID', /does not decompress .*unexpected end of file/],
    ] as const) {
      await expect(pullIt(engine, tag)).rejects.toMatchObject({ code, message: expect.stringMatching(msg) });
      // the config and manifest are not written before the layers: only the blobs dir may exist, empty
      expect(await blobFiles(root)).toEqual([]);
      await fsp.rm(root, { recursive: true, force: true });
    }
  });

  it('ten small layers are named together after one syncfs; with one bad, none is named and no temp file stays', async () => {
    const r = await pullIt('isal', 'many');
    expect(r.manifest.layers.map((l) => l.digest)).toEqual(manyTars.map(sha));
    for (const t of manyTars)
      expect(sha(await fsp.readFile(path.join(root, 'blobs', 'sha256', sha(t).slice(7))))).toBe(sha(t));
    expect((await fsck(root)).problems).toEqual([]);
    await fsp.rm(root, { recursive: true, force: true });
    await expect(pullIt('isal', 'many-bad')).rejects.toMatchObject({ code: 'E_DIGEST_MISMATCH' });
    expect(await blobFiles(root)).toEqual([]);
  });

  it('a pull killed (SIGKILL) while a worker writes a layer leaves no blob; fsck finds only its leftovers; the next pull works', async () => {
    root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-pull-layers-'));
    const run = startCli(root, ['pull', '-q', '--tls-verify=false', `${reg.host}/l:huge`], {}, vbuild);
    // until the worker has written part of the tar
    const dir = path.join(root, 'blobs', 'sha256');
    const started = Date.now();
    let partial = false;
    while (!partial && Date.now() - started < 60_000) {
      for (const n of await fsp.readdir(dir).catch(() => [] as string[]))
        if (n.startsWith('.tmp-') && (await fsp.stat(path.join(dir, n)).catch(() => ({ size: 0 }))).size > 0)
          partial = true;
      if (!partial) await sleep(5);
    }
    run.child.kill('SIGKILL');
    await run.done;
    expect(partial).toBe(true);
    expect((await blobFiles(root)).filter((n) => !n.startsWith('.tmp-'))).toEqual([]);
    const left = await fsck(root);
    expect(left.problems.map((p) => p.kind).filter((k) => k !== 'temp-orphan' && k !== 'lease-stale')).toEqual([]);
    const r = await pull(`${reg.host}/l:huge`, { root, tlsVerify: false });
    expect(r.manifest.layers[0]!.digest).toBe(sha(hugeTar));
    expect((await fsck(root)).problems).toEqual([]);
  });

  it('a pull of 9 layers (one syncfs for all) killed once small layers wait verified in temp blobs leaves no named blob; the next pull works', async () => {
    root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-pull-layers-'));
    const run = startCli(root, ['pull', '-q', '--tls-verify=false', `${reg.host}/l:many-huge`], {}, vbuild);
    const dir = path.join(root, 'blobs', 'sha256');
    const small = new Set(manyTars.map((t) => t.length));
    const started = Date.now();
    let inBatch = false;
    // until a small layer's tar is whole in its temp blob (verified, waiting for the batch) and the huge one is partial
    while (!inBatch && Date.now() - started < 60_000) {
      const sizes = await Promise.all(
        (await fsp.readdir(dir).catch(() => [] as string[]))
          .filter((n) => n.startsWith('.tmp-'))
          .map(async (n) => (await fsp.stat(path.join(dir, n)).catch(() => ({ size: 0 }))).size),
      );
      inBatch = sizes.some((n) => small.has(n)) && sizes.some((n) => n > 0 && n < hugeTar.length && !small.has(n));
      if (!inBatch) await sleep(2);
    }
    run.child.kill('SIGKILL');
    await run.done;
    expect(inBatch).toBe(true);
    expect((await blobFiles(root)).filter((n) => !n.startsWith('.tmp-'))).toEqual([]);
    // what the verified layers came as: whole entries, or (killed mid-create) read as never seen
    const info = new BlobInfo(root);
    for (const t of manyTars.slice(0, 8))
      for (const e of await info.get(sha(t))) expect(e).toMatchObject({ digest: expect.any(String) });
    const left = await fsck(root);
    expect(left.problems.map((p) => p.kind).filter((k) => k !== 'temp-orphan' && k !== 'lease-stale')).toEqual([]);
    const r = await pull(`${reg.host}/l:many-huge`, { root, tlsVerify: false });
    expect(r.manifest.layers.map((l) => l.digest)).toEqual([sha(hugeTar), ...manyTars.slice(0, 8).map(sha)]);
    expect((await blobFiles(root)).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    expect((await fsck(root)).problems).toEqual([]);
    for (const t of [hugeTar, ...manyTars.slice(0, 8)])
      expect(await info.get(sha(t))).toMatchObject([{ digest: expect.stringMatching(/^sha256:/) }]);
  });
});
