/**
 * A big blob's flushed ranges leave the page cache as it is written (page-cache.ts), on both blob
 * writers, and the blob still reads back as its digest. Before, all of it stayed cached: writing a
 * 1.2 GB layer took that many new pages, ~8x slower than cycling through a window of them.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobStore } from './blobs.ts';
import { WRITEBACK_BYTES } from './writeback.ts';

const addon = fileExists(new URL('../../native/bin/vlab-fadvise.node', import.meta.url));
const TMPFS_MAGIC = 0x01021994;
function why(): string | undefined {
  if (!addon) return 'vlab-fadvise.node is not built (scripts/build-native.sh)';
  if (process.env.VLAB_NO_NATIVE === '1') return 'VLAB_NO_NATIVE=1';
  try {
    execFileSync('fincore', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'fincore (util-linux) is not installed';
  }
  // a tmpfs's page cache is its data: nothing to drop there
  if (fs.statfsSync(os.tmpdir()).type === TMPFS_MAGIC) return `${os.tmpdir()} is a tmpfs`;
  return undefined;
}
const skip = why();
if (skip) console.warn(`page-cache test skipped: ${skip}`);

function fileExists(u: URL): boolean {
  try {
    fs.accessSync(u);
    return true;
  } catch {
    return false;
  }
}

/** Bytes of `file` in the page cache (util-linux fincore). */
const resident = (file: string) =>
  Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' }).trim());

const MiB = 1 << 20;
/** One flush and a little more; each MiB its own bytes, so a misplaced range changes the digest. */
const CHUNKS = WRITEBACK_BYTES / MiB + 1;
const chunk = (i: number) => Buffer.alloc(MiB, i & 255);

describe.skipIf(skip)('a big blob leaves the page cache as it is flushed', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vlab-pagecache-'));
  });
  afterAll(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  async function check(blobs: BlobStore, stored: { digest: string; size: number }, expected: string) {
    const file = blobs.path(stored.digest);
    expect(stored.size).toBe(CHUNKS * MiB);
    expect(stored.digest).toBe(expected);
    // what is left is the part written after the last flush, not the 65 MiB
    expect(resident(file)).toBeLessThan(WRITEBACK_BYTES / 2);
    const h = createHash('sha256');
    for await (const b of fs.createReadStream(file)) h.update(b as Buffer);
    expect(`sha256:${h.digest('hex')}`).toBe(expected);
  }

  it('createSync (a COPY layer) and put (a stream) write the same bytes, mostly out of the cache', async () => {
    const blobs = new BlobStore(dir);
    const h = createHash('sha256');
    const w = await blobs.createSync();
    for (let i = 0; i < CHUNKS; i++) {
      w.write(chunk(i));
      h.update(chunk(i));
    }
    const expected = `sha256:${h.digest('hex')}`;
    await check(blobs, await w.commit(), expected);
    await blobs.remove(expected);
    const src = Readable.from(
      (function* () {
        for (let i = 0; i < CHUNKS; i++) yield chunk(i);
      })(),
    );
    await check(blobs, await blobs.put(src), expected);
  });
});
