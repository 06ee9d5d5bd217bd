import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BlobStore } from '../packages/core/src/store/blobs.ts';
import { build, load, save, Store, type BuildEvent } from '@vlab/image';
import {
  buildWithEvents,
  cachedSteps,
  freshStore,
  makeContext,
  missedSteps,
  removeStore,
  snapshotMetaMtime,
} from './helpers.ts';

let root: string;
beforeAll(async () => {
  root = await freshStore();
});
afterAll(async () => {
  await removeStore(root);
});

const done = (events: BuildEvent[]) =>
  events.find((e) => e.type === 'build-done') as Extract<BuildEvent, { type: 'build-done' }>;

describe('build cache', () => {
  it('an unchanged context is not read again: file hashes come from the (path,size,mtime,inode) cache', async () => {
    const files: Record<string, string> = { Dockerfile: 'FROM busybox\nCOPY data/ /data/\n' };
    for (let i = 0; i < 50; i++) files[`data/f${i}.txt`] = `file ${i}`;
    const ctx = await makeContext(files);
    const first = await buildWithEvents({ context: ctx, root });
    expect(done(first.events).contextFilesHashed).toBe(50);
    const second = await buildWithEvents({ context: ctx, root });
    expect(done(second.events).contextFilesHashed).toBe(0);
    expect(done(second.events).contextHashHits).toBe(50);
    expect(cachedSteps(second.events)).toHaveLength(1);
    // Same content, new mtime: hashed again, and still a cache hit (content decides).
    const f = path.join(ctx, 'data/f1.txt');
    await fsp.utimes(f, new Date(), new Date(Date.now() + 5000));
    const third = await buildWithEvents({ context: ctx, root });
    expect(done(third.events).contextFilesHashed).toBe(1);
    expect(cachedSteps(third.events)).toHaveLength(1);
    await fsp.rm(ctx, { recursive: true });
  });

  it('COPY hashes its sources for the key before any packing: a cache hit packs no layer', async () => {
    const files: Record<string, string> = { Dockerfile: 'FROM busybox\nCOPY data/ /data/\n' };
    for (let i = 0; i < 40; i++) files[`data/f${i}.txt`] = `cold ${i}`;
    files['data/big.bin'] = 'x'.repeat(600 * 1024); // streamed, not read whole
    const ctx = await makeContext(files);
    // Every blob written goes through BlobStore.create: a layer, a new config or manifest.
    const blobs = vi.spyOn(BlobStore.prototype, 'create');
    try {
      const first = await buildWithEvents({ context: ctx, root });
      expect(done(first.events).contextFilesHashed).toBe(41);
      blobs.mockClear();
      // The hashes are remembered: the same build again is a hit, nothing re-read, nothing packed.
      blobs.mockClear();
      const again = await buildWithEvents({ context: ctx, root });
      expect(cachedSteps(again.events)).toHaveLength(1);
      expect(done(again.events).contextFilesHashed).toBe(0);
      expect(again.result.digest).toBe(first.result.digest);
      expect(blobs).not.toHaveBeenCalled();
      // Every file touched (new mtimes, same bytes): hashed again, still a hit, and still nothing
      // packed (the old fast path packed the layer while hashing, before the lookup).
      for (const f of Object.keys(files).filter((f) => f.startsWith('data/')))
        await fsp.utimes(path.join(ctx, f), new Date(), new Date(Date.now() + 9000));
      const touched = await buildWithEvents({ context: ctx, root });
      expect(done(touched.events).contextFilesHashed).toBe(41);
      expect(cachedSteps(touched.events)).toHaveLength(1);
      expect(touched.result.digest).toBe(first.result.digest);
      expect(blobs).not.toHaveBeenCalled();
    } finally {
      blobs.mockRestore();
      await fsp.rm(ctx, { recursive: true });
    }
  });

  it('a cached step mounts nothing and starts no container', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nRUN echo x > /x\n' });
    await build({ context: ctx, root });
    // Any prepare/view/mount would rewrite the snapshot metadata; a container would log.
    const before = await snapshotMetaMtime(root);
    const { events } = await buildWithEvents({ context: ctx, root, executor: 'oci', snapshotter: 'overlay' });
    expect(cachedSteps(events)).toHaveLength(1);
    expect(events.some((e) => e.type === 'step-log')).toBe(false);
    expect(await snapshotMetaMtime(root)).toBe(before);
    // …and the same check sees it when a step does run.
    await build({ context: ctx, root, noCache: true });
    expect(await snapshotMetaMtime(root)).not.toBe(before);
    await fsp.rm(ctx, { recursive: true });
  });

  it('--no-cache-filter rebuilds only the named stage', async () => {
    const ctx = await makeContext({
      Dockerfile: 'FROM busybox AS a\nRUN echo a > /a\nFROM busybox AS b\nCOPY --from=a /a /a\nRUN echo b > /b\n',
    });
    await build({ context: ctx, root });
    const { events } = await buildWithEvents({ context: ctx, root, noCacheFilter: ['b'] });
    expect(missedSteps(events).map((m) => m.name)).toEqual([
      expect.stringContaining('[b 1/2] COPY'),
      expect.stringContaining('[b 2/2] RUN'),
    ]);
    expect(cachedSteps(events)).toEqual([expect.stringContaining('[a 1/1] RUN')]);
    await fsp.rm(ctx, { recursive: true });
  });

  it('moving a line or adding a comment keeps the cache; changing an instruction says so', async () => {
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nRUN echo one > /one\n' });
    await build({ context: ctx, root });
    await fsp.writeFile(path.join(ctx, 'Dockerfile'), '# a comment\nFROM busybox\n\nRUN echo one > /one\n');
    expect(missedSteps((await buildWithEvents({ context: ctx, root })).events)).toEqual([]);
    await fsp.writeFile(path.join(ctx, 'Dockerfile'), 'FROM busybox\nRUN echo two > /one\n');
    const missed = missedSteps((await buildWithEvents({ context: ctx, root })).events);
    expect(missed).toHaveLength(1);
    expect(missed[0]!.reason).toMatch(/instruction changed|not built before/);
    await fsp.rm(ctx, { recursive: true });
  });

  it('the key of FROM is the image id: the same image stored in another form (gzip layers) keeps the cache', async () => {
    // A pulled or loaded copy of a base has the same config (image id) but its own manifest digest:
    // keys that name the manifest are store-local, and a second machine would miss every step.
    const tmp = await makeContext({});
    const archive = path.join(tmp, 'bb.tar');
    await save('busybox:latest', archive, { root, format: 'oci', compression: 'gzip' });
    const gz = await load(archive, { root, tag: 'bb-gzip:1' });
    const plain = (await Store.at(root).resolve('busybox:latest'))!;
    expect(gz.imageId).toBe(plain.configDigest);
    expect(gz.digest).not.toBe(plain.manifestDigest);
    const step = 'RUN echo portable > /p.txt\n';
    await build({ context: tmp, root, dockerfile: { text: `FROM busybox\n${step}` } });
    const other = await buildWithEvents({ context: tmp, root, dockerfile: { text: `FROM bb-gzip:1\n${step}` } });
    expect(missedSteps(other.events)).toEqual([]);
    expect(cachedSteps(other.events)).toHaveLength(1);
    await fsp.rm(tmp, { recursive: true });
  });

  it('two builds on one store at once both succeed and share layers', async () => {
    const a = await makeContext({ Dockerfile: 'FROM busybox\nRUN echo same > /same\nRUN echo a > /a\n' });
    const b = await makeContext({ Dockerfile: 'FROM busybox\nRUN echo same > /same\nRUN echo b > /b\n' });
    // SOURCE_DATE_EPOCH: the two RUNs of `echo same` give the same layer even when they end in
    // different seconds (layer mtimes are whole seconds; a loaded machine split them)
    const [ra, rb] = await Promise.all([
      build({ context: a, root, tags: ['par-a'], sourceDateEpoch: 0 }),
      build({ context: b, root, tags: ['par-b'], sourceDateEpoch: 0 }),
    ]);
    expect(ra.manifest.layers[1]!.digest).toBe(rb.manifest.layers[1]!.digest);
    expect(ra.manifest.layers[2]!.digest).not.toBe(rb.manifest.layers[2]!.digest);
    const blobs = await fsp.readdir(path.join(root, 'blobs/sha256'));
    expect(blobs.filter((n) => n.startsWith('.tmp'))).toEqual([]);
    await fsp.rm(a, { recursive: true });
    await fsp.rm(b, { recursive: true });
  });
});

describe('prune', () => {
  it("rmi + prune --all frees an image's own layers and snapshots, keeps tagged ones", async () => {
    const { openEngine, prune, Store } = await import('@vlab/image');
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nRUN head -c 300000 /dev/urandom > /big\n' });
    const res = await build({ context: ctx, root, tags: ['doomed:1'] });
    const engine = await openEngine(root);
    const own = res.manifest.layers.at(-1)!.digest;
    expect(await engine.store.blobs.has(own)).toBe(true);
    // Tagged and cached: none of it goes (untagged manifests of earlier builds may).
    await prune(engine.store, engine.cache, engine.snapshots);
    expect(await engine.store.blobs.has(own)).toBe(true);
    expect(await engine.store.blobs.has(res.digest)).toBe(true);
    await (await Store.open(root)).untag('doomed:1');
    const r = await prune(engine.store, engine.cache, engine.snapshots, { all: true });
    expect(await engine.store.blobs.has(own)).toBe(false);
    expect(r.bytesFreed).toBeGreaterThan(300000);
    expect(r.snapshotsRemoved).toBeGreaterThan(0);
    // The base is still whole: a new build on it works.
    const again = await build({ context: ctx, root, tags: ['doomed:2'] });
    expect(again.manifest.layers.length).toBe(res.manifest.layers.length);
    await fsp.rm(ctx, { recursive: true });
  });
});
