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
 *
 * One shortcut skips the bytes (native driver: a child snapshot starts as a copy of its parent's
 * tree, then a marker file is made, see native-driver.ts): a child file whose ctime is strictly
 * before the marker's has not been touched since the copy, so it still holds its parent's bytes.
 * Sound because user space cannot set a ctime: write, truncate, chmod, setxattr, link, rename (on
 * Linux's filesystems) and utimes itself all move it to "now", so `write` then `touch -d` back is
 * still after the marker. Strictly less: the fs hands out coarse ticks, a change in the marker's
 * own tick reads as equal and goes to the bytes. Both times come from the filesystem, not
 * Date.now(). (A float ctimeMs rounds monotonically, so a float `<` is a real `<`.) It trusts the
 * wall clock not to be stepped back between the copy and the diff.
 */
import { constants, promises as fsp } from 'node:fs';
import { hostPath } from './fsname.ts';

/** What the rule reads of a stat (fs.Stats, UnionStat). */
export interface SizeAndMtime {
  size: number;
  mtimeMs: number;
  /** read only with `copiedAt`, of the copy's side `a` */
  ctimeMs?: number;
  nlink?: number;
}

const CHUNK = 64 * 1024;

/**
 * Whether `a` and `b` (regular files) hold the same bytes. `bytes` opens both contents as chunk
 * streams; it is called only when size and mtime cannot answer alone. `copiedAt`: the ctime
 * (ms) of the marker made once `a`'s tree was copied from `b`'s, when there is one (a single
 * name: a hard-linked `a` keeps the bytes rule).
 */
export async function sameContent(
  a: SizeAndMtime,
  b: SizeAndMtime,
  bytes: () => [AsyncIterable<Buffer>, AsyncIterable<Buffer>],
  copiedAt?: number,
): Promise<boolean> {
  if (a.size !== b.size || a.mtimeMs !== b.mtimeMs) return false;
  // a float mtimeMs is exact for whole seconds; a few ns past one read as whole (bytes compared: safe side)
  if (a.mtimeMs % 1000 !== 0 || a.size === 0) return true;
  if (untouchedSinceCopy(a, copiedAt)) return true;
  const [x, y] = bytes();
  return sameBytes(x, y);
}

/** `a` (of a copied tree) has not changed since the copy ended at marker ctime `copiedAt` (see above). */
export function untouchedSinceCopy(a: SizeAndMtime, copiedAt?: number): boolean {
  // hard links keep the bytes rule: one name's inode may be shared with a name the diff never sees
  return copiedAt !== undefined && a.nlink === 1 && a.ctimeMs !== undefined && a.ctimeMs < copiedAt;
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
