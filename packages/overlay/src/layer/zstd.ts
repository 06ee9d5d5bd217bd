/**
 * zstd compression for layers on any Node (Node 20's zlib has none): @hpcc-js/wasm-zstd, zstd
 * 1.5.7 compiled to WebAssembly (no native build, maintained with the hpcc-js wasm set). The only
 * import site of it. Used on every Node, not only where zlib lacks zstd, so the same layer gives
 * the same blob digest everywhere.
 *
 * Deterministic: the library's chunk calls shape its output, so the input is fed in fixed blocks
 * (every BLOCK bytes, whatever sizes the stream delivers). Bounded: one block in, its output out.
 * The WASM module keeps one stream state: one stream compresses at a time (a queue; the others wait).
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { Zstd } from '@hpcc-js/wasm-zstd';

const BLOCK = 1 << 20;
/** zstd's default level (the OCI layers docker and containerd write use it too). */
export const ZSTD_DEFAULT_LEVEL = 3;

let queue: Promise<void> = Promise.resolve();

/** Waits for the encoder; resolves with it and the function that hands it to the next stream. */
async function takeEncoder(): Promise<[Zstd, () => void]> {
  let release!: () => void;
  const prev = queue;
  queue = new Promise((r) => (release = r));
  await prev;
  try {
    // loaded on first use: a build that exports no zstd never compiles the WASM
    const { Zstd } = await import('@hpcc-js/wasm-zstd');
    return [await Zstd.load(), release];
  } catch (e) {
    release();
    throw e;
  }
}

/** A Transform from bytes to one zstd frame. */
export function zstdCompressStream(level = ZSTD_DEFAULT_LEVEL): Transform {
  const block = Buffer.allocUnsafe(BLOCK);
  let filled = 0;
  let taken: Promise<Zstd> | undefined;
  let release: (() => void) | undefined;
  let destroyed = false;
  const done = () => {
    release?.();
    release = undefined;
  };
  const encoder = () =>
    (taken ??= takeEncoder().then(([z, rel]) => {
      // destroyed while it waited: hand the encoder on at once, untouched
      if (destroyed) {
        rel();
        return z;
      }
      release = rel;
      z.reset();
      z.setCompressionLevel(level);
      return z;
    }));
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      encoder()
        .then((z) => {
          if (destroyed) return cb(); // the encoder may be another stream's now
          for (let off = 0; off < chunk.length;) {
            const n = Math.min(BLOCK - filled, chunk.length - off);
            chunk.copy(block, filled, off, off + n);
            filled += n;
            off += n;
            if (filled === BLOCK) {
              this.push(Buffer.from(z.compressChunk(block)));
              filled = 0;
            }
          }
          cb();
        })
        .catch(cb);
    },
    flush(cb: TransformCallback) {
      encoder()
        .then((z) => {
          if (destroyed) return cb();
          try {
            if (filled) this.push(Buffer.from(z.compressChunk(block.subarray(0, filled))));
            this.push(Buffer.from(z.compressEnd()));
          } finally {
            done();
          }
          cb();
        })
        .catch(cb);
    },
    destroy(err, cb) {
      // an aborted stream: the encoder is reset by the next one
      destroyed = true;
      done();
      cb(err);
    },
  });
}
