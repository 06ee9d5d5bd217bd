/**
 * zstd decompression for pulled layers on any Node: node:zlib's where it has one (Node ≥ 22.15),
 * else fzstd (a maintained pure-JS streaming decoder; the one import site of it). The layer is
 * untrusted: before fzstd sees a frame, its header's window size is checked against
 * MAX_WINDOW (a decoder allocates and shifts its window per block), so a hostile frame
 * header cannot make it allocate or copy gigabytes. Frames are followed block by block (zstd
 * format, RFC 8878 §3.1) for that: only headers are read here, fzstd does the decoding.
 */
import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import { Decompress } from 'fzstd';
import { VlabError } from '@vlab/errors';

/** zstd's own default decompression limit (`zstd -d` refuses larger windows without --memory). */
export const MAX_WINDOW = 128 << 20;
const FRAME_MAGIC = 0xfd2fb528;

type ZstdZlib = { createZstdDecompress?: () => Transform };

const bad = (why: string) => new VlabError('E_LAYER_INVALID', `zstd layer: ${why}`);

/** Frame/block boundaries of a zstd stream, to check each frame's window before it is decoded. */
class FrameScanner {
  private buf: Buffer = Buffer.alloc(0);
  /** Bytes still to pass before the next header (block content, a checksum, a skippable frame). */
  private skip = 0;
  private state: 'frame' | 'block' = 'frame';
  private checksum = false;

  /** Follow `chunk`; throws before a frame with too large a window reaches the decoder. */
  scan(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      if (this.skip) {
        const n = Math.min(this.skip, this.buf.length);
        this.buf = this.buf.subarray(n);
        this.skip -= n;
        if (this.skip) return;
      }
      if (this.state === 'frame') {
        if (this.buf.length < 6) return;
        const magic = this.buf.readUInt32LE(0);
        if ((magic & 0xfffffff0) === 0x184d2a50) {
          if (this.buf.length < 8) return;
          this.skip = 8 + this.buf.readUInt32LE(4);
          continue;
        }
        if (magic !== FRAME_MAGIC) throw bad('not a zstd frame');
        const fhd = this.buf[4]!;
        const single = (fhd >> 5) & 1;
        const fcsBytes = [single, 2, 4, 8][fhd >> 6]!;
        const dictBytes = [0, 1, 2, 4][fhd & 3]!;
        const header = 5 + (single ? 0 : 1) + dictBytes + fcsBytes;
        if (this.buf.length < header) return;
        let window: number;
        if (single) {
          const at = 5 + dictBytes;
          window =
            fcsBytes === 1
              ? this.buf[at]!
              : fcsBytes === 2
                ? this.buf.readUInt16LE(at) + 256
                : fcsBytes === 4
                  ? this.buf.readUInt32LE(at)
                  : Number(this.buf.readBigUInt64LE(at));
        } else {
          const wd = this.buf[5]!;
          const base = 2 ** (10 + (wd >> 3));
          window = base + (base / 8) * (wd & 7);
        }
        if (window > MAX_WINDOW)
          throw bad(
            `a frame asks for a ${Math.ceil(window / 2 ** 20)} MiB window, over the ${MAX_WINDOW >> 20} MiB limit`,
          );
        this.checksum = ((fhd >> 2) & 1) === 1;
        this.skip = header;
        this.state = 'block';
        continue;
      }
      if (this.buf.length < 3) return;
      const bh = this.buf[0]! | (this.buf[1]! << 8) | (this.buf[2]! << 16);
      const last = bh & 1;
      const type = (bh >> 1) & 3;
      if (type === 3) throw bad('reserved block type');
      this.skip = 3 + (type === 1 ? 1 : bh >>> 3);
      if (last) {
        this.skip += this.checksum ? 4 : 0;
        this.state = 'frame';
      }
    }
  }
}

/** A Transform from a zstd stream to its bytes (node:zlib's, or fzstd behind the frame checks). */
export function zstdDecompressStream(): Transform {
  const native = (zlib as unknown as ZstdZlib).createZstdDecompress;
  return native ? native() : jsZstdDecompress();
}

/** fzstd behind the frame checks (what Node < 22.15 uses; tested on every Node). */
export function jsZstdDecompress(): Transform {
  const frames = new FrameScanner();
  const dec = new Decompress((data: Uint8Array) => {
    if (data.length) out.push(Buffer.from(data)); // a copy: the decoder keeps its block buffers
  });
  const out = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      try {
        frames.scan(chunk);
        dec.push(chunk);
        cb();
      } catch (e) {
        cb(e instanceof VlabError ? e : bad((e as Error).message));
      }
    },
    flush(cb: TransformCallback) {
      try {
        dec.push(new Uint8Array(0), true);
        cb();
      } catch (e) {
        cb(bad((e as Error).message));
      }
    },
  });
  return out;
}
