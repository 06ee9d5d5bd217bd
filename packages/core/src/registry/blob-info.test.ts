/**
 * The compressed-blob memory is written while a pull's layers still arrive, so a full disk can
 * surface there first: it must be the store's E_NO_SPACE (a bare ENOSPC is printed as an
 * internal error), and leave no temp file. A real, full tmpfs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { smallTmpfs, tmpfsMissing, type SmallTmpfs } from '../store/testing/small-tmpfs.ts';
import { BlobInfo } from './blob-info.ts';

const missing = tmpfsMissing();
if (missing) console.warn(`blob-info full-disk test skipped: ${missing}`);

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
});
