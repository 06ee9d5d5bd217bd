import { createHash, hash as oneShot } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { hasEscapes, hostPath, nameBytes, nameFromBytes } from '@vlab/overlay';
import type { StatLike } from './walk.ts';

/** Files up to this size are read in one call; larger ones are streamed (never whole in memory). */
const SMALL_FILE = 1 << 20;
/** Files up to this size are hashed with synchronous reads (hashSync). */
const SYNC_FILE = 256 * 1024;
/** One read buffer for every synchronous hash: no allocation per file. */
const readBuf = Buffer.allocUnsafe(SYNC_FILE);

/**
 * File format: MAGIC, then per directory walked (a context root): u32 length and its absolute
 * path (UTF-8), u32 file count, and per file: u32 length, its path under the root, RECORD bytes.
 */
const MAGIC = Buffer.from('vlabfh3\n');
/** size, mtimeMs, ctimeMs, ino (float64 LE each), sha256 (32 bytes). */
const RECORD = 64;
const HASH_AT = 32;
/** Records per buffer (256 KiB): the records grow by a buffer, never copied into a doubled one. */
const CHUNK_BITS = 12;
const CHUNK = 1 << CHUNK_BITS;

async function hashStream(file: string | Buffer): Promise<string> {
  const h = createHash('sha256');
  await pipeline(
    fs.createReadStream(file, { highWaterMark: 1 << 20 }),
    new Writable({
      write(chunk, _e, cb) {
        h.update(chunk);
        cb();
      },
    }),
  );
  return h.digest('hex');
}

/**
 * Content hashes of context files, remembered by (path, size, mtime, ctime, inode) so an
 * unchanged context is never read again (ctime too: a write that restores size and mtime still
 * moves it). Persisted as one binary file per store (read in one call, rewritten atomically); in
 * memory, per context root, a path → slot map over fixed 64-byte records in 256 KiB buffers, hashes
 * kept as bytes. Paths are keyed under their root: the walk's own path strings look them up.
 */
export class FileHashCache {
  /** Root → path under it → record index in `data`. */
  private roots = new Map<string, Map<string, number>>();
  /** Record `slot` is at (slot % CHUNK) * RECORD in chunks[slot / CHUNK]. */
  private chunks: Buffer[] = [];
  private used = 0;
  private dirty = false;
  hits = 0;
  misses = 0;

  constructor(private readonly file?: string) {}

  /**
   * The cache of `file`. A long-lived process (an embedding tool, the bench's worker) keeps the
   * last one it loaded or saved: while the file on disk is the one it wrote or read (same inode,
   * size, mtime), the next build reuses it instead of reading it again.
   */
  static async load(file: string): Promise<FileHashCache> {
    const st = await fsp.stat(file).catch(() => undefined);
    const kept = loaded.get(file);
    if (kept && st && kept.stamp === stampOf(st)) return kept.cache;
    // not the file kept any more: let go of its records now, not at the next save (a 200,000-file
    // cache is 25 MB the build below would carry)
    loaded.delete(file);
    const c = new FileHashCache(file);
    const bytes = await fsp.readFile(file).catch(() => undefined);
    if (bytes) c.parse(bytes); // a corrupt or foreign file only costs re-hashing
    if (st) loaded.set(file, { stamp: stampOf(st), cache: c });
    return c;
  }

  private parse(b: Buffer): void {
    if (b.length < MAGIC.length || !b.subarray(0, MAGIC.length).equals(MAGIC)) return;
    const roots = new Map<string, Map<string, number>>();
    const chunks: Buffer[] = [];
    let used = 0;
    const str = (off: number): [string, number] | undefined => {
      if (off + 4 > b.length) return undefined;
      const end = off + 4 + b.readUInt32LE(off);
      return end > b.length ? undefined : [nameFromBytes(b, off + 4, end), end];
    };
    for (let off = MAGIC.length; off < b.length;) {
      const root = str(off);
      if (!root || root[1] + 4 > b.length) return; // torn: keep nothing rather than guess
      const count = b.readUInt32LE(root[1]);
      const slots = new Map<string, number>();
      off = root[1] + 4;
      for (let i = 0; i < count; i++) {
        const rel = str(off);
        if (!rel || rel[1] + RECORD > b.length) return;
        slots.set(rel[0], used);
        if ((used & (CHUNK - 1)) === 0) chunks.push(Buffer.allocUnsafe(CHUNK * RECORD));
        b.copy(chunks[used >>> CHUNK_BITS]!, (used & (CHUNK - 1)) * RECORD, rel[1], rel[1] + RECORD);
        used++;
        off = rel[1] + RECORD;
      }
      roots.set(root[0], slots);
    }
    this.roots = roots;
    this.chunks = chunks;
    this.used = used;
  }

  /** The remembered hash of `root`/`rel` when `st` still matches it (no I/O), else undefined. */
  peek(root: string, rel: string, st: StatLike): string | undefined {
    const known = this.known(root, rel, st);
    if (known !== undefined) this.hits++;
    return known;
  }

  /** Like `peek`, without counting a hit. */
  known(root: string, rel: string, st: StatLike): string | undefined {
    const slot = this.roots.get(root)?.get(rel);
    if (slot === undefined) return undefined;
    const d = this.chunks[slot >>> CHUNK_BITS]!;
    const at = (slot & (CHUNK - 1)) * RECORD;
    return d.readDoubleLE(at) === st.size &&
      d.readDoubleLE(at + 8) === st.mtimeMs &&
      d.readDoubleLE(at + 16) === st.ctimeMs &&
      d.readDoubleLE(at + 24) === st.ino
      ? d.toString('hex', at + HASH_AT, at + RECORD)
      : undefined;
  }

  /** Remember the hash of `root`/`rel` as `st` describes it (counts as hashed). */
  private record(root: string, rel: string, st: StatLike, hex: string): void {
    this.misses++;
    let slots = this.roots.get(root);
    if (!slots) this.roots.set(root, (slots = new Map()));
    let slot = slots.get(rel);
    if (slot === undefined) {
      if ((this.used & (CHUNK - 1)) === 0) this.chunks.push(Buffer.allocUnsafe(CHUNK * RECORD));
      slot = this.used++;
      slots.set(rel, slot);
    }
    const d = this.chunks[slot >>> CHUNK_BITS]!;
    const at = (slot & (CHUNK - 1)) * RECORD;
    d.writeDoubleLE(st.size, at);
    d.writeDoubleLE(st.mtimeMs, at + 8);
    d.writeDoubleLE(st.ctimeMs, at + 16);
    d.writeDoubleLE(st.ino, at + 24);
    d.write(hex, at + HASH_AT, 32, 'hex');
    this.dirty = true;
  }

  /** The hash of the file at `root`/`rel` (a path inside the root, never through a link) as `st` describes it. */
  async hash(root: string, rel: string, st: StatLike): Promise<string> {
    const known = this.peek(root, rel, st);
    if (known !== undefined) return known;
    const absPath = hostPath(`${root === '/' ? '' : root}/${rel}`);
    const hash =
      st.size <= SMALL_FILE
        ? createHash('sha256')
            .update(await fsp.readFile(absPath))
            .digest('hex')
        : await hashStream(absPath);
    this.record(root, rel, st, hash);
    return hash;
  }

  /**
   * The hash of a small file (up to SYNC_FILE bytes) read with synchronous calls into one shared
   * buffer, else undefined: for thousands of small files, a thread-pool round trip each costs
   * more than the read, and a buffer each is garbage the heap has to grow for.
   */
  hashSync(root: string, rel: string, st: StatLike): string | undefined {
    const known = this.peek(root, rel, st);
    if (known !== undefined || st.size > SYNC_FILE) return known;
    const fd = fs.openSync(hostPath(`${root === '/' ? '' : root}/${rel}`), 'r');
    let hash: string;
    try {
      // One read for a file that fits (a one-shot hash: no Hash object per file); one grown
      // since its lstat is read to its end, as readFile would.
      let n = fs.readSync(fd, readBuf, 0, readBuf.length, null);
      if (n < readBuf.length) hash = oneShot('sha256', readBuf.subarray(0, n), 'hex');
      else {
        const h = createHash('sha256').update(readBuf);
        while ((n = fs.readSync(fd, readBuf, 0, readBuf.length, null)) > 0) h.update(readBuf.subarray(0, n));
        hash = h.digest('hex');
      }
    } finally {
      fs.closeSync(fd);
    }
    this.record(root, rel, st, hash);
    return hash;
  }

  /** The file's bytes in pieces of about 1 MiB (a 200,000-file cache is 17 MB: not one Buffer). */
  private *bytes(): Generator<Buffer> {
    const PIECE = 1 << 20;
    let out = Buffer.allocUnsafe(PIECE);
    let off = MAGIC.copy(out, 0);
    const full = (n: number) => off + n > out.length;
    const next = (n: number) => {
      const piece = out.subarray(0, off);
      out = Buffer.allocUnsafe(Math.max(PIECE, n));
      off = 0;
      return piece;
    };
    for (const [root, slots] of this.roots) {
      const rootLen = Buffer.byteLength(root);
      if (full(8 + rootLen)) yield next(8 + rootLen);
      off = out.writeUInt32LE(rootLen, off);
      off += out.write(root, off);
      // the pieces are written with waits between them, and another build sharing this cache may
      // record meanwhile: write exactly the count written here (later records: the next save)
      let left = slots.size;
      off = out.writeUInt32LE(left, off);
      for (const [rel, slot] of slots) {
        if (left-- === 0) break;
        const raw = hasEscapes(rel) ? nameBytes(rel) : undefined; // a name that is not UTF-8: its bytes
        const len = raw ? raw.length : Buffer.byteLength(rel);
        if (full(4 + len + RECORD)) yield next(4 + len + RECORD);
        off = out.writeUInt32LE(len, off);
        off += raw ? raw.copy(out, off) : out.write(rel, off);
        const at = (slot & (CHUNK - 1)) * RECORD;
        off += this.chunks[slot >>> CHUNK_BITS]!.copy(out, off, at, at + RECORD);
      }
    }
    yield out.subarray(0, off);
  }

  async save(): Promise<void> {
    if (!this.dirty || !this.file) return;
    await fsp.mkdir(path.dirname(this.file), { recursive: true });
    const out = this.bytes();
    const tmp = `${this.file}.tmp-${process.pid}-${++saves}`; // two saves at once: two temp files
    await fsp.writeFile(tmp, out);
    await fsp.rename(tmp, this.file);
    this.dirty = false;
    const st = await fsp.stat(this.file).catch(() => undefined);
    if (st) loaded.set(this.file, { stamp: stampOf(st), cache: this });
  }
}

const loaded = new Map<string, { stamp: string; cache: FileHashCache }>();
let saves = 0;

function stampOf(st: StatLike): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}`;
}
