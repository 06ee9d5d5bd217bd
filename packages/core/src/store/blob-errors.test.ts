/**
 * A blob write stream's file errors are named once, where the file's 'error' event is handled:
 * ENOSPC (a full filesystem) is E_NO_SPACE, anything else (EROFS here; EIO from a dying disk) is
 * E_STORE, never a bare errno that the CLI would print as an internal error. Either way no temp
 * file stays and no name points at half a blob. Real filesystems: a small tmpfs, remounted
 * read-only for the EROFS case.
 */
import { execFileSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { BlobStore } from './blobs.ts';
import { smallTmpfs, tmpfsMissing, type SmallTmpfs } from './testing/small-tmpfs.ts';

const missing = tmpfsMissing();
if (missing) console.warn(`blob stream error tests skipped: ${missing}`);

describe.skipIf(missing)('a blob stream whose file fails', () => {
  let fsys: SmallTmpfs | undefined;
  let dir: string | undefined;
  afterEach(() => {
    fsys?.close();
    fsys = dir = undefined;
  });

  /** A store on a fresh tmpfs of `mib` MiB, one blob in it already (its dir exists). */
  async function storeOn(mib: number): Promise<BlobStore> {
    fsys = smallTmpfs(mib, 'vlab-blob-err-');
    dir = fsys.dir;
    const blobs = new BlobStore(dir);
    await blobs.putBytes('before');
    return blobs;
  }
  const names = async (b: BlobStore) => (await fsp.readdir(b.dir)).sort();
  const source = (mib: number) =>
    Readable.from(
      (function* () {
        for (let i = 0; i < mib; i++) yield Buffer.alloc(1 << 20, i);
      })(),
    );

  it('put on a full filesystem: E_NO_SPACE; no temp, no name', async () => {
    const blobs = await storeOn(2);
    const before = await names(blobs);
    await expect(blobs.put(source(4))).rejects.toMatchObject({ code: 'E_NO_SPACE', cause: { code: 'ENOSPC' } });
    expect(await names(blobs)).toEqual(before);
  });

  it('put on a read-only filesystem: E_STORE with the errno as cause; no temp, no name', async () => {
    const blobs = await storeOn(2);
    const before = await names(blobs);
    execFileSync('mount', ['-o', 'remount,ro', dir!]);
    await expect(blobs.put(source(1))).rejects.toMatchObject({ code: 'E_STORE', cause: { code: 'EROFS' } });
    expect(await names(blobs)).toEqual(before);
  });

  it('create → commit after the stream failed: the same E_STORE; no temp, no name', async () => {
    const blobs = await storeOn(2);
    const before = await names(blobs);
    execFileSync('mount', ['-o', 'remount,ro', dir!]);
    const blob = await blobs.create();
    const piped = pipeline(source(1), blob.stream).catch((e: unknown) => e);
    await expect(blob.commit()).rejects.toMatchObject({ code: 'E_STORE', cause: { code: 'EROFS' } });
    expect(await piped).toMatchObject({ code: 'E_STORE' });
    expect(await names(blobs)).toEqual(before);
  });
});
