/**
 * One-pass digests: the diffID (sha256 of the uncompressed tar) and, when asked, the compressed
 * blob's digest, computed while the bytes stream to their destination.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipStream } from './pgzip.ts';
import { zstdCompressStream } from './zstd.ts';

export interface Digested {
  digest: string; // 'sha256:…'
  size: number;
}

/** A pass-through Transform that hashes what flows through it. */
export function hashingStream(): { stream: Transform; result(): Digested } {
  const h: Hash = createHash('sha256');
  let size = 0;
  let digest: string | undefined;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  return {
    stream,
    result: () => ({ digest: (digest ??= `sha256:${h.digest('hex')}`), size }),
  };
}

export type Compression = 'none' | 'gzip' | 'zstd';

export interface LayerWritten {
  diffId: string;
  size: number; // uncompressed bytes
  /** Digest and size of the bytes written to `out` (equal to diffId/size when uncompressed). */
  digest: string;
  compressedSize: number;
}

/**
 * Stream a layer tar to `out` while computing the diffID and size in the same pass.
 * With `compression`, `out` receives the compressed blob and `digest` is that blob's digest.
 * gzip and zstd output are deterministic (pgzip.ts: fixed segments, no name/mtime in the header;
 * zstd.ts feeds fixed blocks). `level`: gzip 0-9, zstd 1-22 (default 6 and 3).
 */
export async function writeLayer(
  tar: Readable | NodeJS.ReadableStream,
  out: Writable,
  opts: { compression?: Compression; level?: number } = {},
): Promise<{ diffId: string; size: number } & LayerWritten> {
  const raw = hashingStream();
  const comp = opts.compression ?? 'none';
  if (comp === 'none') {
    await pipeline(tar, raw.stream, out);
    const r = raw.result();
    return { diffId: r.digest, size: r.size, digest: r.digest, compressedSize: r.size };
  }
  const z: Transform = comp === 'gzip' ? gzipStream(opts.level) : zstdCompressStream(opts.level);
  const packed = hashingStream();
  await pipeline(tar, raw.stream, z, packed.stream, out);
  const r = raw.result();
  const p = packed.result();
  return { diffId: r.digest, size: r.size, digest: p.digest, compressedSize: p.size };
}
