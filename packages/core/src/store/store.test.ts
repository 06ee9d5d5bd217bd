import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Store } from './store.ts';
import { sha256 } from './blobs.ts';
import { MEDIA } from '../image/types.ts';

let root: string;
beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-store-'));
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

describe('Store', () => {
  it('creates an OCI layout and stores blobs by digest', async () => {
    const s = await Store.open(root);
    expect(JSON.parse(await fsp.readFile(path.join(root, 'oci-layout'), 'utf8'))).toEqual({
      imageLayoutVersion: '1.0.0',
    });
    const r = await s.blobs.putBytes('hello');
    expect(r.digest).toBe(sha256('hello'));
    expect(await fsp.readFile(s.blobs.path(r.digest), 'utf8')).toBe('hello');
  });

  it('is private to its owner: root, tmp and snapshots are 0700, also when they existed as 0755', async () => {
    const fresh = path.join(root, 'fresh');
    await Store.open(fresh);
    const old = path.join(root, 'old');
    for (const d of ['', 'tmp', 'snapshots']) await fsp.mkdir(path.join(old, d), { recursive: true, mode: 0o755 });
    await Store.open(old);
    for (const r of [fresh, old]) {
      for (const d of ['', 'tmp', 'snapshots'])
        expect(((await fsp.stat(path.join(r, d))).mode & 0o777).toString(8)).toBe('700');
    }
  });

  it('refuses a blob whose digest does not match and leaves no temp file', async () => {
    const s = await Store.open(root);
    await expect(s.blobs.put(Readable.from([Buffer.from('x')]), sha256('y'))).rejects.toMatchObject({
      code: 'E_DIGEST_MISMATCH',
    });
    expect((await fsp.readdir(path.join(root, 'blobs', 'sha256'))).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    expect(await s.blobs.has(sha256('x'))).toBe(false);
  });

  it('an aborted streaming write leaves no blob', async () => {
    const s = await Store.open(root);
    const w = await s.blobs.create();
    w.stream.write('partial');
    await w.abort();
    expect(await fsp.readdir(path.join(root, 'blobs', 'sha256'))).toEqual([]);
  });

  it('tags, resolves by name, digest and id prefix, and untags', async () => {
    const s = await Store.open(root);
    const layer = await s.blobs.putBytes(Buffer.alloc(1024));
    const img = await s.putImage(
      {
        architecture: 'amd64',
        os: 'linux',
        config: {},
        rootfs: { type: 'layers', diff_ids: [layer.digest] },
        history: [],
      },
      [{ mediaType: MEDIA.layer, digest: layer.digest, size: layer.size }],
    );
    await s.tag('demo', img.manifestDigest);
    expect((await s.resolve('demo:latest'))?.manifestDigest).toBe(img.manifestDigest);
    expect((await s.resolve('docker.io/library/demo'))?.manifestDigest).toBe(img.manifestDigest);
    expect((await s.resolve(img.manifestDigest))?.configDigest).toBe(img.configDigest);
    expect((await s.resolve(img.configDigest.slice(7, 19)))?.manifestDigest).toBe(img.manifestDigest);
    expect(await s.untag('demo')).toBe(true);
    expect(await s.resolve('demo')).toBeUndefined();
  });

  it('keeps every tag when many writers update the index at once', async () => {
    const s = await Store.open(root);
    const layer = await s.blobs.putBytes('l');
    const img = await s.putImage(
      { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] },
      [{ mediaType: MEDIA.layer, digest: layer.digest, size: layer.size }],
    );
    const other = await Store.open(root); // a second handle, as a second build would have
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? s : other).tag(`img${i}`, img.manifestDigest)));
    expect((await s.listImages()).length).toBe(20);
  });

  it('rejects malformed references with E_BAD_REF', async () => {
    const s = await Store.open(root);
    const layer = await s.blobs.putBytes('m');
    await expect(s.tag('Bad Name', layer.digest)).rejects.toMatchObject({ code: 'E_BAD_REF' });
  });
});

describe.skipIf(process.getuid?.() !== 0)('a lease on a full disk (a tmpfs of its own)', () => {
  it('fails E_NO_SPACE, and what it did not write is not counted as held', async () => {
    const { execFileSync } = await import('node:child_process');
    const { Lease, liveLeases } = await import('./lease.ts');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', root]);
    try {
      const lease = new Lease(root);
      await lease.hold({ blobs: [sha256('a')] });
      const st = await fsp.statfs(root);
      execFileSync('fallocate', ['-l', String(st.bavail * st.bsize), path.join(root, 'filler')]);
      const second = new Lease(root); // a file of its own: its first line needs a page
      await expect(second.hold({ blobs: [sha256('b')] })).rejects.toMatchObject({ code: 'E_NO_SPACE' });
      await fsp.rm(path.join(root, 'filler'));
      await second.hold({ blobs: [sha256('b')] });
      expect((await liveLeases(root)).blobs).toEqual(new Set([sha256('a'), sha256('b')]));
    } finally {
      execFileSync('umount', [root]);
    }
  });
});
