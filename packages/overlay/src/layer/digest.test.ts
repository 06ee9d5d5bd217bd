import { describe, it, expect } from 'vitest';
import { Readable, Writable } from 'node:stream';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { isVlabError } from '@vlab/errors';
import { writeLayer, hasZstd } from './digest.ts';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
function sink() {
  const parts: Buffer[] = [];
  return {
    w: new Writable({
      write(c, _e, cb) {
        parts.push(c);
        cb();
      },
    }),
    buf: () => Buffer.concat(parts),
  };
}

describe('writeLayer', () => {
  const data = Buffer.alloc(3 * 1024 * 1024 + 17, 'layer');
  it('uncompressed: diffID and size in one pass', async () => {
    const o = sink();
    const r = await writeLayer(Readable.from([data.subarray(0, 1000), data.subarray(1000)]), o.w);
    expect(r).toMatchObject({ diffId: sha(data), size: data.length, digest: sha(data), compressedSize: data.length });
    expect(o.buf().equals(data)).toBe(true);
  });
  it('gzip: blob digest of the compressed bytes, diffID of the raw ones, deterministic', async () => {
    const a = sink();
    const r = await writeLayer(Readable.from([data]), a.w, { compression: 'gzip' });
    expect(r.diffId).toBe(sha(data));
    expect(r.digest).toBe(sha(a.buf()));
    expect(r.compressedSize).toBe(a.buf().length);
    expect(gunzipSync(a.buf()).equals(data)).toBe(true);
    const b = sink();
    expect((await writeLayer(Readable.from([data]), b.w, { compression: 'gzip' })).digest).toBe(r.digest);
  });
  it.skipIf(hasZstd())('zstd is refused with E_UNSUPPORTED where node:zlib has no zstd (Node 20)', async () => {
    const err = await writeLayer(Readable.from([data]), sink().w, { compression: 'zstd' }).catch((e) => e);
    expect(isVlabError(err, 'E_UNSUPPORTED')).toBe(true);
  });
});
