/**
 * The promises store/types.ts writes down, checked against the store through its interface only
 * (`Store.open` gives a `Store`): atomic, idempotent, which error for which failure, concurrency.
 */
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MEDIA, type ImageConfig } from '../image/types.ts';
import { sha256 } from './blobs.ts';
import { Store } from './store.ts';

let root: string;
let store: Store;
beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-store-contract-'));
  store = await Store.open(root);
});
afterEach(async () => {
  await store.lease.release();
  await fsp.rm(root, { recursive: true, force: true });
});

const blobDir = () => path.join(root, 'blobs', 'sha256');
const code = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (e: { code?: string }) => e.code ?? String(e),
  );

describe('Store contract: blobs', () => {
  it('put is idempotent, also for concurrent writers of the same content: one blob remains', async () => {
    const a = await store.blobs.putBytes('same');
    const b = await store.blobs.put(Readable.from([Buffer.from('same')]));
    const many = await Promise.all(
      Array.from({ length: 8 }, () => store.blobs.put(Readable.from([Buffer.from('sa'), Buffer.from('me')]))),
    );
    for (const r of [b, ...many]) expect(r).toEqual({ digest: a.digest, size: 4 });
    expect(await store.blobs.list()).toEqual([a.digest]);
    expect(await fsp.readdir(blobDir())).toEqual([a.digest.slice(7)]); // no temp file either
  });

  it('a missing blob: has is false, size and readJson are E_BLOB_MISSING, remove is no error', async () => {
    const d = sha256('absent');
    expect(await store.blobs.has(d)).toBe(false);
    expect(await code(store.blobs.size(d))).toBe('E_BLOB_MISSING');
    expect(await code(store.blobs.readJson(d))).toBe('E_BLOB_MISSING');
    expect(await code(store.blobs.remove(d))).toBe('resolved');
    expect(await code(store.loadManifest(d))).toBe('E_BLOB_MISSING');
  });

  it('createFile: named as the digest its writer reports; a wrong expected digest or abort leaves nothing', async () => {
    const ok = await store.blobs.createFile();
    await fsp.writeFile(ok.path, 'by a worker', { flag: 'wx' });
    const d = sha256('by a worker');
    expect(await ok.commit(d, d)).toEqual({ digest: d, size: 11 });
    const bad = await store.blobs.createFile();
    await fsp.writeFile(bad.path, 'other', { flag: 'wx' });
    expect(await code(bad.commit(sha256('other'), sha256('else')))).toBe('E_DIGEST_MISMATCH');
    const dropped = await store.blobs.createFile();
    await fsp.writeFile(dropped.path, 'dropped', { flag: 'wx' });
    await dropped.abort();
    expect(await code((await store.blobs.createFile()).commit(d))).toBe('E_BLOB_MISSING'); // nothing written
    expect(await fsp.readdir(blobDir())).toEqual([d.slice(7)]);
  });

  it('a blob that is not JSON is E_BLOB_MISSING for readJson', async () => {
    const { digest } = await store.blobs.putBytes('not json{');
    expect(await code(store.blobs.readJson(digest))).toBe('E_BLOB_MISSING');
  });

  it('anything but a sha256 digest is E_BAD_DIGEST: no digest names a path outside the store', async () => {
    for (const bad of ['../../../etc/passwd', 'sha256:../../x', `sha512:${'a'.repeat(128)}`, '']) {
      expect(() => store.blobs.path(bad)).toThrow(expect.objectContaining({ code: 'E_BAD_DIGEST' }));
      expect(await code(store.blobs.has(bad))).toBe('E_BAD_DIGEST');
      expect(await code(store.blobs.size(bad))).toBe('E_BAD_DIGEST');
      expect(await code(store.blobs.readJson(bad))).toBe('E_BAD_DIGEST');
      expect(await code(store.blobs.remove(bad))).toBe('E_BAD_DIGEST');
    }
  });

  it('a writer killed mid-blob leaves no blob, only a temp file that the next store open removes', async () => {
    const storeTs = path.join(import.meta.dirname, 'store.ts');
    // A real process, writing a blob piece by piece until it is killed (SIGKILL: no cleanup runs).
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `const { Store } = await import(${JSON.stringify(storeTs)});
         const s = await Store.open(${JSON.stringify(root)});
         const w = await s.blobs.create();
         const chunk = Buffer.alloc(64 * 1024, 7);
         let n = 0;
         setInterval(() => { w.stream.write(chunk); if (++n === 4) console.log('writing'); }, 5);`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('writing') && resolve());
      child.on('exit', (c) => reject(new Error(`writer exited early (${c})`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const left = await fsp.readdir(blobDir());
    expect(left.length).toBe(1);
    expect(left[0]).toMatch(/^\.tmp-\d+-/);
    expect((await fsp.stat(path.join(blobDir(), left[0]!))).size).toBeGreaterThan(0); // it was mid-write
    expect(await store.blobs.list()).toEqual([]);
    await Store.open(root);
    expect(await fsp.readdir(blobDir())).toEqual([]);
  });
});

describe('Store contract: images and names', () => {
  const image = async () => {
    const layer = await store.blobs.putBytes(Buffer.alloc(512));
    const config: ImageConfig = {
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: [layer.digest] },
      history: [],
    };
    return { config, layers: [{ mediaType: MEDIA.layer, digest: layer.digest, size: layer.size }] };
  };

  it('putImage is idempotent and refuses layers that are not stored (E_BLOB_MISSING)', async () => {
    const { config, layers } = await image();
    const a = await store.putImage(config, layers);
    const b = await store.putImage(config, layers);
    expect(b.manifestDigest).toBe(a.manifestDigest);
    expect(b.configDigest).toBe(a.configDigest);
    expect(await store.listImages()).toEqual([]); // names nothing
    const missing = [{ mediaType: MEDIA.layer, digest: sha256('no such layer'), size: 1 }];
    expect(await code(store.putImage(config, missing))).toBe('E_BLOB_MISSING');
  });

  it('tag is idempotent and replaces; untag of an unknown name is false; bad references are E_BAD_REF', async () => {
    const { config, layers } = await image();
    const img = await store.putImage(config, layers);
    await store.tag('x:1', img.manifestDigest);
    await store.tag('x:1', img.manifestDigest);
    expect(await store.listImages()).toEqual([{ ref: 'x:1', digest: img.manifestDigest }]);
    expect(await code(store.tag('x:1', sha256('no manifest')))).toBe('E_BLOB_MISSING');
    expect(await code(store.tag('Bad Ref!', img.manifestDigest))).toBe('E_BAD_REF');
    expect(await code(store.untag('Bad Ref!'))).toBe('E_BAD_REF');
    expect(await store.untag('x:2')).toBe(false);
    expect(await store.untag('x:1')).toBe(true);
    expect(await store.untag('x:1')).toBe(false);
  });

  it('resolve of an unknown or unparsable reference is undefined, not an error', async () => {
    expect(await store.resolve('nope:latest')).toBeUndefined();
    expect(await store.resolve('Not A Ref!!')).toBeUndefined();
    expect(await store.resolve(sha256('no manifest'))).toBeUndefined();
  });

  it('an unreadable index.json is E_STORE; a missing one is an empty index', async () => {
    await fsp.rm(path.join(root, 'index.json'));
    expect((await store.readIndex()).manifests).toEqual([]);
    await fsp.writeFile(path.join(root, 'index.json'), '{ torn');
    expect(await code(store.readIndex())).toBe('E_STORE');
  });
});
