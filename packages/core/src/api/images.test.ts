/** The image functions of the public API, as a library user calls them (what `vbuild` verbs call). */
import { execFileSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importRootfs, inspect, listImages, load, openEngine, rmi, save, tag } from '../index.ts';

let dir: string;
const store = () => ({ root: path.join(dir, 'store') });
const code = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (e: { code?: string }) => e.code ?? String(e),
  );

beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-api-images-'));
  await fsp.mkdir(path.join(dir, 'rootfs/etc'), { recursive: true });
  await fsp.writeFile(path.join(dir, 'rootfs/etc/hello'), 'hi\n');
  execFileSync('tar', ['-C', path.join(dir, 'rootfs'), '-cf', path.join(dir, 'rootfs.tar'), '.']);
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('image API', () => {
  it('importRootfs, listImages, tag, inspect, save, load, rmi', async () => {
    const img = await importRootfs(path.join(dir, 'rootfs.tar'), 'base:1', store());
    expect(img.imageId).toMatch(/^sha256:[a-f0-9]{64}$/);
    // unpacked at import, as docker does: the snapshot of its one layer exists
    const engine = await openEngine(store().root);
    const snaps = await engine.snapshots();
    expect((await snaps.walk()).filter((s) => s.kind === 'committed')).toHaveLength(1);
    await engine.store.lease.release();

    await tag('base:1', 'other:2', store());
    const list = await listImages(store());
    expect(list.map((i) => i.ref).sort()).toEqual(['base:1', 'other:2']);
    expect(list.every((i) => i.imageId === img.imageId && i.digest === img.digest && i.size > 0)).toBe(true);
    const cfg = await inspect('other:2', store());
    expect(cfg).toMatchObject({ Id: img.imageId, Digest: img.digest, os: 'linux' });

    const archive = path.join(dir, 'base.tar');
    await save('base:1', archive, store());
    const elsewhere = { root: path.join(dir, 'store2') };
    const loaded = await load(archive, { ...elsewhere, tag: 'copy:1' });
    expect(loaded).toEqual(img); // same config and manifest, by digest
    expect((await listImages(elsewhere)).map((i) => i.ref)).toEqual(['copy:1']);

    await rmi('other:2', store());
    expect((await listImages(store())).map((i) => i.ref)).toEqual(['base:1']);
    // each call released what it held against gc: no lease is left behind in this live process
    for (const root of [store().root, elsewhere.root])
      expect(await fsp.readdir(path.join(root, 'leases')).catch(() => [])).toEqual([]);
  });

  it('names nothing matches are E_IMAGE_NOT_FOUND; a bad save format is E_BAD_ARG', async () => {
    expect(await code(inspect('nope:1', store()))).toBe('E_IMAGE_NOT_FOUND');
    expect(await code(tag('nope:1', 'x:1', store()))).toBe('E_IMAGE_NOT_FOUND');
    expect(await code(rmi('nope:1', store()))).toBe('E_IMAGE_NOT_FOUND');
    expect(await code(save('nope:1', path.join(dir, 'x.tar'), store()))).toBe('E_IMAGE_NOT_FOUND');
    expect(await code(save('base:1', path.join(dir, 'x.tar'), { ...store(), format: 'zip' as 'oci' }))).toBe(
      'E_BAD_ARG',
    );
  });
});
