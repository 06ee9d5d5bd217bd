import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BlobStore } from './blobs.ts';
import { thinDisk, thinDiskMissing } from './testing/thin-disk.ts';
import { WRITEBACK_BYTES } from './writeback.ts';

const missing = thinDiskMissing();
if (missing) console.warn(`writeback close test skipped: ${missing}`);

describe.skipIf(missing)('a stream blob that fails while its periodic fdatasync runs', () => {
  it('closes its fd only after that fdatasync: the disk unmounts right after the rejection', async () => {
    const chunk = Buffer.alloc(1 << 20, 7);
    for (let round = 0; round < 3; round++) {
      const disk = thinDisk();
      let closed = false;
      try {
        const blobs = new BlobStore(disk.dir);
        await blobs.putBytes('before');
        // the source fails just past the first flush (64 MiB), while that fdatasync writes them
        const src = Readable.from(
          (function* () {
            for (let n = 0; n <= WRITEBACK_BYTES; n += chunk.length) yield chunk;
            throw new Error('the source broke');
          })(),
        );
        await expect(blobs.put(src)).rejects.toThrow('the source broke');
        closed = true;
        disk.close(); // throws "target is busy" while an fdatasync still holds the file
      } finally {
        if (!closed) disk.close();
      }
    }
  });
});
