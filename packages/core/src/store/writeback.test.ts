/**
 * The periodic fdatasync (writeback.ts) on a disk whose writeback fails: its error fails the blob
 * it belongs to (E_NO_SPACE for ENOSPC), on each writer of blobs, and nothing is named. A dropped
 * error named a blob whose first 64 MiB never reached the disk: a later fsync on a fresh fd does
 * not report an error the fdatasync already consumed.
 */
import zlib from 'node:zlib';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { InflatePool } from '../registry/inflate-pool.ts';
import { BlobStore } from './blobs.ts';
import { thinDisk, thinDiskMissing, type ThinDisk } from './testing/thin-disk.ts';
import { WRITEBACK_BYTES } from './writeback.ts';

const missing = thinDiskMissing();
if (missing) console.warn(`writeback error tests skipped: ${missing}`);

describe.skipIf(missing)('a failed periodic fdatasync fails its blob', () => {
  let disk: ThinDisk | undefined;
  afterEach(() => {
    disk?.close();
    disk = undefined;
  });

  /** A store on a thin disk whose writeback fails from now on (its blob dir's blocks already on disk). */
  async function failingStore(): Promise<BlobStore> {
    disk = thinDisk();
    const blobs = new BlobStore(disk.dir);
    await blobs.putBytes('before');
    disk.sync();
    disk.fill();
    return blobs;
  }
  const names = async (b: BlobStore) => (await fsp.readdir(b.dir)).sort();
  /** Our fds on the disk: none may be left (an fd left to the GC keeps the filesystem busy). */
  const openOnDisk = async () => {
    const links = await Promise.all(
      (await fsp.readdir('/proc/self/fd')).map((n) => fsp.readlink(`/proc/self/fd/${n}`).catch(() => '')),
    );
    return links.filter((l) => l.startsWith(disk!.dir));
  };
  const chunk = Buffer.alloc(1 << 20, 7);

  it('createSync: the write past the failed flush or the commit fails E_NO_SPACE; no temp, no name', async () => {
    const blobs = await failingStore();
    const before = await names(blobs);
    const w = await blobs.createSync();
    let failed: unknown;
    try {
      for (let n = 0; n < WRITEBACK_BYTES; n += chunk.length) w.write(chunk);
      await w.commit();
    } catch (e) {
      failed = e;
      await w.abort();
    }
    expect(failed).toMatchObject({ code: 'E_NO_SPACE' });
    expect(await names(blobs)).toEqual(before);
    expect(await openOnDisk()).toEqual([]);
  });

  it('a stream (put): rejected E_NO_SPACE; no temp, no name', async () => {
    const blobs = await failingStore();
    const before = await names(blobs);
    const src = Readable.from(
      (function* () {
        for (let n = 0; n < WRITEBACK_BYTES; n += chunk.length) yield chunk;
      })(),
    );
    await expect(blobs.put(src)).rejects.toMatchObject({ code: 'E_NO_SPACE' });
    expect(await names(blobs)).toEqual(before);
    expect(await openOnDisk()).toEqual([]);
  });

  it("a pull's gunzip worker: the job fails with the flush's ENOSPC", async () => {
    const blobs = await failingStore();
    const gz = zlib.gzipSync(Buffer.alloc(WRITEBACK_BYTES, 7), { level: 1 });
    const file = await blobs.createFile();
    const pool = new InflatePool();
    try {
      const job = pool.start(file.path, 1 << 30);
      await job.write(gz);
      const e = await job.end().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toMatchObject({ code: 'E_STORE', cause: { code: 'ENOSPC' } });
      // what blob-get.ts does with it
      expect(await file.abort(e)).toMatchObject({ code: 'E_NO_SPACE' });
      expect(path.basename(file.path)).toMatch(/^\.tmp-/);
    } finally {
      await pool.close();
    }
  });
});
