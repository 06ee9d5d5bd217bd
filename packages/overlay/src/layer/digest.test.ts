import { describe, it, expect } from 'vitest';
import { Readable, Writable } from 'node:stream';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { writeLayer } from './digest.ts';

const zstdCli = (() => {
  try {
    execFileSync('zstd', ['--version']);
    return true;
  } catch {
    console.warn('digest.test: the zstd CLI (Debian zstd) is not installed: zstd output is not checked by a peer');
    return false;
  }
})();

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
  it.skipIf(!zstdCli)(
    'zstd: one frame the zstd CLI reads back, the same blob whatever the chunking, streams at once each right',
    async () => {
      const chunks = (size: number) =>
        Array.from({ length: Math.ceil(data.length / size) }, (_, i) => data.subarray(i * size, (i + 1) * size));
      const [a, b, c] = [sink(), sink(), sink()];
      const other = Buffer.from('another layer '.repeat(100_000));
      const [r, r2, ro] = await Promise.all([
        writeLayer(Readable.from(chunks(1000)), a.w, { compression: 'zstd' }),
        writeLayer(Readable.from(chunks(3 << 20)), b.w, { compression: 'zstd' }),
        writeLayer(Readable.from([other]), c.w, { compression: 'zstd' }),
      ]);
      expect(r.diffId).toBe(sha(data));
      expect(r.digest).toBe(sha(a.buf()));
      expect(r2.digest).toBe(r.digest);
      expect(execFileSync('zstd', ['-d', '-c'], { input: a.buf(), maxBuffer: 1 << 26 }).equals(data)).toBe(true);
      expect(execFileSync('zstd', ['-d', '-c'], { input: c.buf(), maxBuffer: 1 << 26 }).equals(other)).toBe(true);
      expect(ro.diffId).toBe(sha(other));
      const empty = sink();
      await writeLayer(Readable.from([]), empty.w, { compression: 'zstd' });
      expect(execFileSync('zstd', ['-d', '-c'], { input: empty.buf() }).length).toBe(0);
    },
  );
});

describe('zstd stream', () => {
  it('an aborted stream hands the encoder on: the next layer still compresses', async () => {
    const { zstdCompressStream } = await import('./zstd.ts');
    const dead = zstdCompressStream();
    dead.write(Buffer.alloc(10, 1));
    dead.destroy(new Error('aborted'));
    dead.on('error', () => undefined);
    const waiting = zstdCompressStream(); // destroyed before it got the encoder
    waiting.write(Buffer.alloc(10, 2));
    waiting.on('error', () => undefined);
    waiting.destroy(new Error('aborted too'));
    const o = sink();
    const r = await writeLayer(Readable.from([Buffer.from('after')]), o.w, { compression: 'zstd' });
    expect(r.digest).toBe(sha(o.buf()));
    if (zstdCli) expect(execFileSync('zstd', ['-d', '-c'], { input: o.buf() }).toString()).toBe('after');
  });
});
