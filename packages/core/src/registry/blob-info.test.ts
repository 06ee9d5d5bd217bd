/**
 * The compressed-blob memory: a full disk must be the store's E_NO_SPACE (a bare ENOSPC is
 * printed as an internal error) and leave no temp file or empty entry (a real, full tmpfs); a
 * pull's new entries (addNew) merge with what is known, and an entry a crash left
 * damaged counts as never seen and is written whole again.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { smallTmpfs, tmpfsMissing, type SmallTmpfs } from '../store/testing/small-tmpfs.ts';
import { BlobInfo } from './blob-info.ts';

const missing = tmpfsMissing();
if (missing) console.warn(`blob-info full-disk test skipped: ${missing}`);

const d = (c: string) => `sha256:${c.repeat(64)}`;

describe('BlobInfo.addNew', () => {
  let dir: string;
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates new entries, adds the repo to known ones, rewrites a damaged one', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vlab-blobinfo-'));
    const info = new BlobInfo(dir);
    const blob = (c: string) => ({ digest: d(c), size: 3, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' });
    await info.add(d('1'), blob('a'), 'reg/old');
    const byDiffId = path.join(dir, 'distribution', 'by-diffid');
    // what a process killed between its create and its write leaves
    fs.writeFileSync(path.join(byDiffId, `${'3'.repeat(64)}.json`), '');
    expect(await info.get(d('3'))).toEqual([]);
    await Promise.all([
      info.addNew(d('1'), blob('a'), 'reg/new'),
      info.addNew(d('2'), blob('b'), 'reg/new'),
      info.addNew(d('3'), blob('c'), 'reg/new'),
    ]);
    expect(await info.get(d('1'))).toEqual([{ ...blob('a'), repos: ['reg/old', 'reg/new'] }]);
    expect(await info.get(d('2'))).toEqual([{ ...blob('b'), repos: ['reg/new'] }]);
    expect(await info.get(d('3'))).toEqual([{ ...blob('c'), repos: ['reg/new'] }]);
    expect(fs.readdirSync(byDiffId).sort()).toEqual(['1', '2', '3'].map((c) => `${c.repeat(64)}.json`));
  });
});

describe.skipIf(missing)('BlobInfo on a full filesystem', () => {
  let fsys: SmallTmpfs | undefined;
  afterEach(() => {
    fsys?.close();
    fsys = undefined;
  });

  it('add: E_NO_SPACE with the ENOSPC as its cause, no temp file left', async () => {
    fsys = smallTmpfs(1, 'vlab-blobinfo-');
    const dir = fsys.dir;
    const info = new BlobInfo(dir);
    const diffId = `sha256:${'a'.repeat(64)}`;
    await info.add(diffId, { digest: `sha256:${'b'.repeat(64)}`, size: 1, mediaType: 'x' }, 'r/one');
    const byDiffId = path.join(dir, 'distribution', 'by-diffid');
    fsys.fill();
    const big = { digest: `sha256:${'c'.repeat(64)}`, size: 1, mediaType: 'x'.repeat(64 << 10) };
    await expect(info.add(diffId, big, 'r/two')).rejects.toMatchObject({
      code: 'E_NO_SPACE',
      cause: { code: 'ENOSPC' },
    });
    expect(fs.readdirSync(byDiffId).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('addNew: E_NO_SPACE, and the entry it could not write is not left empty', async () => {
    fsys = smallTmpfs(1, 'vlab-blobinfo-');
    const info = new BlobInfo(fsys.dir);
    await info.add(d('a'), { digest: d('b'), size: 1, mediaType: 'x' }, 'r/one');
    fsys.fill();
    await expect(
      info.addNew(d('c'), { digest: d('d'), size: 1, mediaType: 'x'.repeat(64 << 10) }, 'r/two'),
    ).rejects.toMatchObject({ code: 'E_NO_SPACE', cause: { code: 'ENOSPC' } });
    expect(fs.readdirSync(path.join(fsys.dir, 'distribution', 'by-diffid'))).toEqual([`${'a'.repeat(64)}.json`]);
  });
});
