/**
 * Writing layer tars: one entry (header, the file's bytes, padding) and the stream of a whole
 * layer. The snapshot diff and COPY's pack output both write through these, so an entry has one
 * encoding whichever way its layer is made.
 */
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { hostPath } from '../fsname.ts';
import { Readable } from 'node:stream';
import { VlabError } from '@vlab/errors';
import { bareEntry, encodeHeader, padding, END_OF_ARCHIVE, type TarEntry } from './tar-format.ts';

/** Files up to this size are read with one synchronous call, into a slice of a shared slab. */
const SMALL = 256 * 1024;
/**
 * Small files are read into slices of 1 MiB slabs, not a buffer each: 20,000 small mallocs
 * fragment the C heap (RSS that never comes back); a slab is one mapping, unmapped when its
 * slices are gone (the layer stream copies them into its own chunks).
 */
const SLAB = 1 << 20;
let slab = Buffer.allocUnsafe(SLAB);
let slabUsed = 0;

function slabSlice(n: number): Buffer {
  if (n > SLAB - slabUsed) {
    slab = Buffer.allocUnsafe(SLAB);
    slabUsed = 0;
  }
  const b = slab.subarray(slabUsed, slabUsed + n);
  slabUsed += n;
  return b;
}

/**
 * One entry's bytes: its header, then for a file the `size` bytes of `file` (host path) and the
 * padding. Small files are read synchronously (a thread-pool round trip per file costs more than
 * the read); big ones are streamed. A file whose size is not `size` any more is E_DIFF_CHANGED.
 */
export async function* tarEntryBytes(h: TarEntry, file?: string): AsyncGenerator<Buffer> {
  yield encodeHeader(h);
  if (h.type !== 'file' || h.size === 0 || file === undefined) return;
  let n = 0;
  if (h.size <= SMALL) {
    const fd = openSync(hostPath(file), 'r');
    try {
      const b = slabSlice(h.size + padding(h.size));
      while (n < h.size) {
        const got = readSync(fd, b, n, h.size - n, n);
        if (!got) break;
        n += got;
      }
      b.fill(0, h.size);
      if (n === h.size) {
        yield b;
        return;
      }
    } finally {
      closeSync(fd);
    }
  } else {
    for await (const c of createReadStream(hostPath(file), { highWaterMark: 1 << 20 })) {
      const b = c as Buffer;
      const take = Math.min(b.length, h.size - n);
      if (take > 0) yield take === b.length ? b : b.subarray(0, take);
      n += b.length;
    }
  }
  if (n !== h.size)
    throw new VlabError('E_DIFF_CHANGED', `${h.name} changed size while being archived: build again`, {
      details: { path: h.name },
    });
  const pad = padding(h.size);
  if (pad) yield Buffer.alloc(pad);
}

/** A whiteout marker (`.wh.name`, `.wh..wh..opq`): no metadata of its own (mode 0, owner 0, mtime 0), byte-stable. */
export function whiteoutHeader(name: string): Buffer {
  return encodeHeader(bareEntry(name, 'file'));
}

/** A layer's mtime: whole seconds, clamped to `sourceDateEpoch` when one is set. */
export function layerMtime(seconds: number, sourceDateEpoch?: number): number {
  const t = Math.floor(seconds);
  return sourceDateEpoch !== undefined && t > sourceDateEpoch ? sourceDateEpoch : t;
}

/**
 * The layer tar of `entries` (bytes from tarEntryBytes / whiteoutHeader), end blocks added, as
 * a stream with back-pressure. Small chunks are joined so the stream moves ~256 KiB at a time.
 */
export function layerTar(entries: AsyncIterable<Buffer>): Readable {
  return Readable.from(coalesce(entries), { objectMode: false, highWaterMark: 1 << 20 });
}

async function* coalesce(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let len = 0;
  for await (const b of src) {
    if (b.length >= 1 << 16 && !len) {
      yield b;
      continue;
    }
    parts.push(b);
    len += b.length;
    if (len >= 1 << 18) {
      yield Buffer.concat(parts, len);
      parts = [];
      len = 0;
    }
  }
  parts.push(END_OF_ARCHIVE);
  yield Buffer.concat(parts, len + END_OF_ARCHIVE.length);
}
