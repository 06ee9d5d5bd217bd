import fsp from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSnapshotter } from '@vlab/overlay';
import { Store } from '../store/store.ts';
import { LayerManager } from './manager.ts';
import { chainIds } from '../image/chain.ts';

let root: string;
beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-layers-'));
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

describe('LayerManager.withWritableSnapshot', () => {
  it('mounts a step overlay volatile (no sync of the whole filesystem on unmount) and still commits its layer', async () => {
    const store = await Store.open(root);
    const layers = new LayerManager(store, () => createSnapshotter(store.path('snapshots'), { driver: 'overlay' }));
    const base = await layers.withWritableSnapshot([], async (rootfs) => fsp.writeFile(path.join(rootfs, 'base'), 'b'));
    let options = '';
    const top = await layers.withWritableSnapshot([base!], async (rootfs) => {
      const line = readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .find((l) => l.split(' ')[4] === rootfs);
      options = line?.split(' - ')[1] ?? '';
      await fsp.writeFile(path.join(rootfs, 'top'), 't');
    });
    const [major, minor] = os.release().split('.').map(Number);
    if (major! > 5 || (major === 5 && minor! >= 10)) expect(options).toMatch(/^overlay .*volatile/);
    expect(top?.digest).toMatch(/^sha256:/);
    // The committed step is a lowerdir from now on: a view of both layers sees both files.
    const seen = await layers.withView([base!, top!], async (r) => (await fsp.readdir(r)).sort());
    expect(seen).toEqual(['base', 'top']);
  });
});

describe('LayerManager.withWritableSnapshot: a dir only copied up', () => {
  it('is left out of the layer and of the committed snapshot (a later step merges no empty /etc)', async () => {
    const store = await Store.open(root);
    const layers = new LayerManager(store, () => createSnapshotter(store.path('snapshots'), { driver: 'overlay' }));
    const base = await layers.withWritableSnapshot([], async (rootfs) => {
      await fsp.mkdir(path.join(rootfs, 'etc'));
      await fsp.writeFile(path.join(rootfs, 'etc/passwd'), 'root:x:0:0::/:/bin/sh\n');
      await fsp.utimes(path.join(rootfs, 'etc'), 1e9, 1e9);
    });
    // what a run's mountpoints do: a file made in /etc (overlay copies /etc up) and removed, /etc's mtime put back
    const top = await layers.withWritableSnapshot([base!], async (rootfs) => {
      await fsp.writeFile(path.join(rootfs, 'etc/hosts'), '');
      await fsp.rm(path.join(rootfs, 'etc/hosts'));
      await fsp.utimes(path.join(rootfs, 'etc'), 1e9, 1e9);
      await fsp.writeFile(path.join(rootfs, 'step.txt'), 's');
    });
    const dirs = store.path('snapshots', 'snapshots');
    const withEtc = [];
    for (const id of await fsp.readdir(dirs))
      if (await fsp.stat(path.join(dirs, id, 'fs', 'etc')).catch(() => undefined)) withEtc.push(id);
    expect(withEtc).toHaveLength(1); // the base's
    expect(top?.size).toBeLessThan(base!.size);
    const seen = await layers.withView([base!, top!], async (r) => [
      (await fsp.readdir(r)).sort(),
      (await fsp.stat(path.join(r, 'etc'))).mtimeMs,
    ]);
    expect(seen).toEqual([['etc', 'step.txt'], 1e12]);
  });
});

describe('LayerManager: a step commits volatile, the build settles once', () => {
  it.each(['overlay', 'native'] as const)(
    'steps write no durable snapshot metadata; settle() names them all in metadata.json (%s)',
    async (driver) => {
      const store = await Store.open(root);
      const layers = new LayerManager(store, () => createSnapshotter(store.path('snapshots'), { driver }));
      const meta = store.path('snapshots', 'metadata.json');
      const durable = () =>
        Object.keys((JSON.parse(readFileSync(meta, 'utf8')) as { snapshots: object }).snapshots).sort();
      const a = await layers.withWritableSnapshot([], async (rootfs) => fsp.writeFile(path.join(rootfs, 'a'), 'a'));
      const before = (await fsp.stat(meta)).ino;
      const b = await layers.withWritableSnapshot([a!], async (rootfs) => fsp.writeFile(path.join(rootfs, 'b'), 'b'));
      expect((await fsp.stat(meta)).ino).toBe(before); // the second step replaced nothing durable
      expect(durable()).toEqual([]);
      const chain = chainIds([a!.diffId, b!.diffId]);
      const snaps = await layers.snapshots();
      expect((await snaps.stat(chain[1]!))?.kind).toBe('committed');
      await layers.settle();
      expect(durable()).toEqual([...chain].sort());
      const seen = await layers.withView([a!, b!], async (r) => (await fsp.readdir(r)).sort());
      expect(seen).toEqual(['a', 'b']);
    },
  );
});

describe('LayerManager.ensureSnapshot (issue 10, hole 1: the layer digest is checked before anything is committed)', () => {
  it.each(['overlay', 'native'] as const)(
    'a base layer whose config diff_id is wrong is never committed, and its partial snapshot is removed (%s)',
    async (driver) => {
      const store = await Store.open(root);
      const layers = new LayerManager(store, () => createSnapshotter(store.path('snapshots'), { driver }));
      // a real layer blob (one file), described by a config that lies about its diff_id
      const good = await layers.withWritableSnapshot([], async (rootfs) =>
        fsp.writeFile(path.join(rootfs, 'payload'), 'p'),
      );
      const lying = { ...good!, diffId: `sha256:${'0'.repeat(64)}` };
      const fresh = new LayerManager(await Store.open(root), () =>
        createSnapshotter(store.path('snapshots'), { driver }),
      );
      await expect(fresh.ensureSnapshot([lying])).rejects.toMatchObject({ code: 'E_LAYER_DIGEST' });
      const snaps = await fresh.snapshots();
      const keys = (await snaps.walk()).map((s) => `${s.kind} ${s.key}`);
      expect(keys.filter((k) => k.includes('0'.repeat(64)) || / extract-/.test(k))).toEqual([]);
      expect(await snaps.stat(chainIds([lying.diffId])[0]!)).toBeFalsy();
      // the same blob under its true diff_id still unpacks
      expect(await fresh.ensureSnapshot([good!])).toBe(chainIds([good!.diffId])[0]);
    },
  );
});
