/**
 * The compressed-blob memory is written while a pull's layers still arrive, so a full disk can
 * surface there first: it must be the store's E_NO_SPACE (a bare ENOSPC is printed as an
 * internal error), and leave no temp file. A real, full tmpfs.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BlobInfo } from './blob-info.ts';

const missing = process.getuid?.() !== 0 ? 'needs root (mounts a tmpfs)' : undefined;
if (missing) console.warn(`blob-info full-disk test skipped: ${missing}`);

describe.skipIf(missing)('BlobInfo on a full filesystem', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (!dir) return;
    execFileSync('umount', [dir]);
    fs.rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('add: E_NO_SPACE with the ENOSPC as its cause, no temp file left', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vlab-blobinfo-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', dir]);
    const info = new BlobInfo(dir);
    const diffId = `sha256:${'a'.repeat(64)}`;
    await info.add(diffId, { digest: `sha256:${'b'.repeat(64)}`, size: 1, mediaType: 'x' }, 'r/one');
    const byDiffId = path.join(dir, 'distribution', 'by-diffid');
    const st = fs.statfsSync(dir);
    execFileSync('fallocate', ['-l', String(st.bavail * st.bsize), path.join(dir, 'filler')]);
    const big = { digest: `sha256:${'c'.repeat(64)}`, size: 1, mediaType: 'x'.repeat(64 << 10) };
    await expect(info.add(diffId, big, 'r/two')).rejects.toMatchObject({
      code: 'E_NO_SPACE',
      cause: { code: 'ENOSPC' },
    });
    expect(fs.readdirSync(byDiffId).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});
