/**
 * gzip for layers, compressed in parallel and reproducibly (pigz's scheme): the input is cut
 * into fixed 1 MiB segments, each deflated on libuv's thread pool with the previous segment's
 * last 32 KiB as its dictionary (so matches reach back as in one stream), ended by a sync flush;
 * the raw deflate pieces are joined in order into ONE gzip member (fixed header: no name,
 * mtime 0) with the CRC-32 and size of the whole input. The bytes depend only on the input and
 * the level, never on timing or the number of threads: the same layer gives the same digest.
 *
 * A segment whose sampled bytes look random (an already compressed file) is stored (level 0):
 * zlib spends as long failing to compress random bytes as compressing text, and gains nothing.
 * Levels 1-3 deflate with ISA-L's igzip (native/vlab-isal.c, when built: ~10× zlib's level 1
 * for about its size), else with zlib. Which one ran changes the bytes (not their content): the
 * digest is the same on every push from one install, and the store remembers it per diff_id.
 */
import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import { isalAddon } from '../native.ts';

const SEGMENT = 1 << 20;
const WINDOW = 32 << 10;
const OUT_CHUNK = SEGMENT + (64 << 10);
/** Segments of one stream compressing at once (the thread pool has 4 threads by default). */
const IN_FLIGHT = 4;
/** gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS unix. */
const HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
/** An empty final block (fixed Huffman, BFINAL set): ends the deflate stream. */
const LAST_BLOCK = Buffer.from([3, 0]);

type Crc32 = (data: Buffer, value?: number) => number;
const zlibCrc32 = (zlib as unknown as { crc32?: Crc32 }).crc32;
let table: Uint32Array | undefined;
/** CRC-32 (zlib's where Node has it, ≥ 20.15; the same function in JS otherwise). */
const crc32: Crc32 =
  zlibCrc32 ??
  ((data, value = 0) => {
    table ??= Uint32Array.from({ length: 256 }, (_, n) => {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      return c >>> 0;
    });
    let c = ~value >>> 0;
    for (const b of data) c = table[(c ^ b) & 0xff]! ^ (c >>> 8);
    return ~c >>> 0;
  });

const SAMPLES = 8;
const SAMPLE = 2048;

/**
 * True when 8 samples of 2 KiB spread over the segment have ≥ 7.9 bits of entropy per byte
 * (random bytes measure ≈ 7.99, text 4–5, machine code ≈ 6): a segment with any compressible part
 * among the samples is compressed.
 */
export function looksRandom(seg: Buffer): boolean {
  if (seg.length < SAMPLES * SAMPLE * 4) return false;
  const counts = new Uint32Array(256);
  const step = Math.floor((seg.length - SAMPLE) / (SAMPLES - 1));
  for (let k = 0; k < SAMPLES; k++) for (let i = k * step, end = i + SAMPLE; i < end; i++) counts[seg[i]!]!++;
  const total = SAMPLES * SAMPLE;
  let h = 0;
  for (const c of counts) if (c) h -= (c / total) * Math.log2(c / total);
  return h >= 7.9;
}

interface Igzip {
  /** Raw deflate of `input` into `output`, sync-flushed: bytes written, or -1 (then zlib runs). */
  deflate(input: Buffer, dictionary: Buffer | null, output: Buffer, level: number): Promise<number>;
}
let igzip: Igzip | null | undefined;
function loadIgzip(): Igzip | null {
  if (igzip !== undefined) return igzip;
  const file = isalAddon();
  igzip = null;
  if (file) {
    const m = { exports: {} as Igzip };
    process.dlopen(m, file);
    igzip = m.exports;
  }
  return igzip;
}

/** Which deflate levels 1-3 run on: igzip when vlab-isal.node is built, else zlib. */
export const gzipEngine = (): 'igzip' | 'zlib' => (loadIgzip() ? 'igzip' : 'zlib');

/** igzip's levels are 0-3 (its 0 compresses); gzip levels 1-3 map to them. */
const IGZIP_MAX = 3;

async function deflate(seg: Buffer, level: number, dictionary: Buffer | undefined): Promise<Buffer> {
  const native = level >= 1 && level <= IGZIP_MAX ? loadIgzip() : null;
  if (native) {
    const out = Buffer.allocUnsafe(OUT_CHUNK);
    const n = await native.deflate(seg, dictionary ?? null, out, level);
    if (n >= 0) return out.subarray(0, n);
  }
  return new Promise((resolve, reject) =>
    zlib.deflateRaw(
      seg,
      // one output buffer per segment (deflate never grows 1 MiB by 64 KiB): zlib's default 16 KiB
      // outputs cost a main-thread round trip each, and a copy to join them
      { level, chunkSize: OUT_CHUNK, finishFlush: zlib.constants.Z_SYNC_FLUSH, ...(dictionary ? { dictionary } : {}) },
      (e, out) => (e ? reject(e) : resolve(out)),
    ),
  );
}

/** A Transform from bytes to one gzip member, compressed in parallel (see above). `level` 1-9, default 6. */
export function gzipStream(level = 6): Transform {
  let parts: Buffer[] = [];
  let buffered = 0;
  let tail: Buffer | undefined;
  let crc = 0;
  let size = 0;
  let started = false;
  const jobs: Promise<Buffer>[] = [];

  const start = (seg: Buffer) => {
    crc = crc32(seg, crc);
    size = (size + seg.length) % 2 ** 32;
    const dictionary = tail;
    tail = Buffer.from(seg.subarray(Math.max(0, seg.length - WINDOW)));
    const job = deflate(seg, looksRandom(seg) ? 0 : level, dictionary);
    job.catch(() => undefined); // awaited in order below; this only keeps a failure from being unhandled meanwhile
    jobs.push(job);
  };
  const cut = (all: boolean) => {
    while (buffered >= SEGMENT || (all && buffered > 0)) {
      const joined = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      const n = Math.min(SEGMENT, joined.length);
      start(joined.subarray(0, n));
      parts = n < joined.length ? [joined.subarray(n)] : [];
      buffered -= n;
    }
  };
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      if (!started) {
        started = true;
        this.push(HEADER);
      }
      parts.push(chunk);
      buffered += chunk.length;
      cut(false);
      const drain = async () => {
        while (jobs.length >= IN_FLIGHT) this.push(await jobs.shift()!);
      };
      drain().then(() => cb(), cb);
    },
    flush(cb: TransformCallback) {
      if (!started) this.push(HEADER);
      cut(true);
      const finish = async () => {
        while (jobs.length) this.push(await jobs.shift()!);
        const trailer = Buffer.alloc(8);
        trailer.writeUInt32LE(crc >>> 0, 0);
        trailer.writeUInt32LE(size, 4);
        this.push(Buffer.concat([LAST_BLOCK, trailer]));
      };
      finish().then(() => cb(), cb);
    },
  });
}
