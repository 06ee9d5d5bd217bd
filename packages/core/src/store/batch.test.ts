/**
 * A CommitBatch's flush that fails — the syncfs on a disk whose writeback fails, a rename, an
 * abort — removes the temp blobs it did not name at once, and names nothing it did not sync.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CommitBatch } from './batch.ts';
import { BlobStore, sha256 } from './blobs.ts';
import { thinDisk, thinDiskMissing, type ThinDisk } from './testing/thin-disk.ts';

/** `n` small blobs, verified and left to `batch`'s flush. */
async function batched(blobs: BlobStore, batch: CommitBatch, n: number): Promise<string[]> {
  const digests: string[] = [];
  for (let i = 0; i < n; i++) {
    const w = await blobs.create();
    w.stream.end(Buffer.from(`layer ${i} `.repeat(8000)));
    digests.push((await w.commit(undefined, batch)).digest);
  }
  return digests;
}
const names = async (b: BlobStore) => (await fsp.readdir(b.dir)).sort();
const hex = (d: string) => d.slice('sha256:'.length);

describe('CommitBatch: a failed flush leaves no temp blob', () => {
  let root: string | undefined;
  afterEach(async () => {
    if (root) await fsp.rm(root, { recursive: true, force: true });
    root = undefined;
  });
  const tmpStore = async () => {
    root = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-batch-'));
    return new BlobStore(root);
  };

  it('a rename that fails: the others are named (synced), its temp is gone, E_STORE', async () => {
    const blobs = await tmpStore();
    const batch = new CommitBatch(root!);
    const digests = await batched(blobs, batch, 8);
    // a directory where one blob's name goes: its rename fails (EISDIR)
    await fsp.mkdir(path.join(blobs.dir, hex(digests[3]!), 'x'), { recursive: true });
    await expect(batch.flush()).rejects.toMatchObject({ code: 'E_STORE', cause: { code: 'EISDIR' } });
    expect(await names(blobs)).toEqual(digests.map(hex).sort());
    for (const d of digests.filter((_, i) => i !== 3)) expect(sha256(await fsp.readFile(blobs.path(d)))).toBe(d);
  });

  it('aborted before the names: E_ABORTED, nothing named, no temp', async () => {
    const blobs = await tmpStore();
    const batch = new CommitBatch(root!);
    await batched(blobs, batch, 8);
    const ac = new AbortController();
    const flushed = batch.flush(ac.signal);
    ac.abort(); // while the syncfs runs
    await expect(flushed).rejects.toMatchObject({ code: 'E_ABORTED' });
    expect(await names(blobs)).toEqual([]);
  });
});

const missing = thinDiskMissing();
if (missing) console.warn(`CommitBatch syncfs failure test skipped: ${missing}`);

describe.skipIf(missing)('CommitBatch on a disk whose writeback fails', () => {
  let disk: ThinDisk | undefined;
  afterEach(() => {
    disk?.close();
    disk = undefined;
  });

  it('the syncfs fails: nothing is named, no temp stays, E_NO_SPACE or E_STORE', async () => {
    disk = thinDisk();
    const blobs = new BlobStore(disk.dir);
    await blobs.putBytes('before');
    disk.sync();
    const before = await names(blobs);
    disk.fill();
    const batch = new CommitBatch(disk.dir);
    await batched(blobs, batch, 10);
    await expect(batch.flush()).rejects.toMatchObject({ code: expect.stringMatching(/^E_(NO_SPACE|STORE)$/) });
    expect(await names(blobs)).toEqual(before);
  });
});
