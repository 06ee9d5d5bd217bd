/**
 * The one rule for "this regular file still holds the same bytes" when two trees are compared
 * without hashing every file (overlay's native-driver diff, `vbuild diff` of two images).
 *
 * Equal size and mtime are trusted only when the mtime has a sub-second part. A whole-second
 * mtime may be a truncated one (tar keeps seconds, so does extraction onto some filesystems;
 * `touch -d`, `SOURCE_DATE_EPOCH` clamping and `utimes(…, n, n)` set whole seconds on purpose), so
 * two different files share it easily: then the bytes decide. This is where containerd's
 * continuity `fs` (sameFile) draws the line too. The cost is bounded: the bytes are read only for
 * such files, in chunks, and the reading stops at the first difference.
 */
import { constants, promises as fsp } from 'node:fs';
import { hostPath } from './fsname.ts';

/** What the rule reads of a stat (fs.Stats, UnionStat). */
export interface SizeAndMtime {
  size: number;
  mtimeMs: number;
}

const CHUNK = 64 * 1024;

/**
 * Whether `a` and `b` (regular files) hold the same bytes. `bytes` opens both contents as chunk
 * streams; it is called only when size and mtime cannot answer alone.
 */
export async function sameContent(
  a: SizeAndMtime,
  b: SizeAndMtime,
  bytes: () => [AsyncIterable<Buffer>, AsyncIterable<Buffer>],
): Promise<boolean> {
  if (a.size !== b.size || a.mtimeMs !== b.mtimeMs) return false;
  // a float mtimeMs is exact for whole seconds; a few ns past one read as whole (bytes compared: safe side)
  if (a.mtimeMs % 1000 !== 0 || a.size === 0) return true;
  const [x, y] = bytes();
  return sameBytes(x, y);
}

/** The content of file `p`, in chunks; a symlink put in its place is not followed. */
export async function* fileChunks(p: string): AsyncIterable<Buffer> {
  const fh = await fsp.open(hostPath(p), constants.O_RDONLY | constants.O_NOFOLLOW); // names as bytes (fsname.ts)
  try {
    for (let at = 0; ;) {
      const b = Buffer.allocUnsafe(CHUNK);
      const { bytesRead } = await fh.read(b, 0, CHUNK, at);
      if (!bytesRead) return;
      at += bytesRead;
      yield b.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

/** Two chunk streams hold the same bytes (chunk boundaries may differ); both are closed on return. */
export async function sameBytes(a: AsyncIterable<Buffer>, b: AsyncIterable<Buffer>): Promise<boolean> {
  interface Side {
    it: AsyncIterator<Buffer>;
    buf: Buffer;
    done: boolean;
  }
  const ia = a[Symbol.asyncIterator]();
  const ib = b[Symbol.asyncIterator]();
  const side: { a: Side; b: Side } = {
    a: { it: ia, buf: Buffer.alloc(0), done: false },
    b: { it: ib, buf: Buffer.alloc(0), done: false },
  };
  const fill = async (s: Side) => {
    while (!s.buf.length && !s.done) {
      const r = await s.it.next();
      if (r.done) s.done = true;
      else s.buf = r.value;
    }
  };
  try {
    for (;;) {
      await fill(side.a);
      await fill(side.b);
      const x = side.a.buf;
      const y = side.b.buf;
      if (!x.length || !y.length) return !x.length && !y.length;
      const n = Math.min(x.length, y.length);
      if (!x.subarray(0, n).equals(y.subarray(0, n))) return false;
      side.a.buf = x.subarray(n);
      side.b.buf = y.subarray(n);
    }
  } finally {
    // stop reading early (first difference): closes the files / streams
    await Promise.all([ia.return?.(), ib.return?.()]);
  }
}
