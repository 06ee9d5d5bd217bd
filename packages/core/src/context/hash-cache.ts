import { createHash, hash as oneShot } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { changedError, hasEscapes, hostPath, nameBytes, nameFromBytes, openSameSync, readAllSync } from '@vlab/overlay';
import type { StatLike } from './walk.ts';
import { HashRecords, RECORD, RootIndex, type RecordKey } from './hash-records.ts';
import { willNeed } from '../store/page-cache.ts';

/** Files up to this size are read in one call; larger ones are streamed (never whole in memory). */
const SMALL_FILE = 1 << 20;
/** Files up to this size are hashed with synchronous reads (hashSync). */
const SYNC_FILE = 256 * 1024;
/** A small file's open, read and close taking longer than this came from the disk (a hit: ~10 µs). */
const SLOW_READ_MS = 0.2;
/** After this many slow reads a checksum prefetches (TableHashes.cold). */
const SLOW_READS = 16;
/** One read buffer for every synchronous hash: no allocation per file. */
const readBuf = Buffer.allocUnsafe(SYNC_FILE);

/**
 * File format: MAGIC, then per directory walked (a context root): u32 length and its absolute
 * path (UTF-8), u32 file count, and per file: u32 length, its path under the root, RECORD bytes
 * (hash-records.ts). Paths are written sorted; a file read in another order is sorted on load.
 */
const MAGIC = Buffer.from('vlabfh3\n');
/** Dead records (files hashed again) tolerated before compacting, at least. */
const MIN_DEAD = 1024;

async function hashStream(fd: number, size: number, name: string): Promise<string> {
  const h = createHash('sha256');
  let n = 0;
  await pipeline(
    fs.createReadStream('', { fd, start: 0, autoClose: false, highWaterMark: 1 << 20 }),
    new Writable({
      write(chunk: Buffer, _e, cb) {
        n += chunk.length;
        h.update(chunk);
        cb(n > size ? changedError(name) : null);
      },
    }),
  );
  if (n !== size) throw changedError(name);
  return h.digest('hex');
}

/**
 * Content hashes of context files, remembered by (path, size, mtime, ctime, inode) so an
 * unchanged context is never read again (ctime too: a write that restores size and mtime still
 * moves it). Persisted as one binary file per store (read in one call, rewritten atomically); in
 * memory, records (hash-records.ts) and per context root a sorted path list, which a build's
 * walk table is merged with once (`forTable`) instead of looking each path up.
 */
export class FileHashCache {
  private roots = new Map<string, RootIndex>();
  /** Replaced by a compacted copy (`compact`), never changed in place. */
  records = new HashRecords();
  /** TableHashes in use (checksums running): while one is, records are not compacted. */
  private views = 0;
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
    const roots = new Map<string, RootIndex>();
    const str = (off: number): [string, number] | undefined => {
      if (off + 4 > b.length) return undefined;
      const end = off + 4 + b.readUInt32LE(off);
      return end > b.length ? undefined : [nameFromBytes(b, off + 4, end), end];
    };
    for (let off = MAGIC.length; off < b.length;) {
      const root = str(off);
      if (!root || root[1] + 4 > b.length) return; // torn: keep nothing rather than guess
      const count = b.readUInt32LE(root[1]);
      const idx = new RootIndex();
      off = root[1] + 4;
      for (let i = 0; i < count; i++) {
        const rel = str(off);
        if (!rel || rel[1] + RECORD > b.length) return;
        idx.add(rel[0], this.records.addBytes(b, rel[1]));
        off = rel[1] + RECORD;
      }
      idx.fold();
      roots.set(root[0], idx);
    }
    this.roots = roots;
  }

  private index(root: string): RootIndex {
    let idx = this.roots.get(root);
    if (!idx) this.roots.set(root, (idx = new RootIndex()));
    return idx;
  }

  /** The remembered hash of `root`/`rel` when `st` still matches it (no I/O), else undefined. */
  peek(root: string, rel: string, st: StatLike): string | undefined {
    const known = this.known(root, rel, st);
    if (known !== undefined) this.hits++;
    return known;
  }

  /** Like `peek`, without counting a hit. */
  known(root: string, rel: string, st: StatLike): string | undefined {
    const slot = this.roots.get(root)?.find(rel) ?? -1;
    return slot >= 0 && this.records.matches(slot, st) ? this.records.hex(slot) : undefined;
  }

  /** Remember the hash of `root`/`rel` as `st` describes it (counts as hashed): its record. */
  record(idx: RootIndex, rel: string, st: RecordKey, hex: string): number {
    this.misses++;
    const slot = this.records.add(st, hex);
    idx.add(rel, slot);
    this.dirty = true;
    return slot;
  }

  /** The hash of the file at `root`/`rel` (a path inside the root, never through a link) as `st` describes it. */
  async hash(root: string, rel: string, st: StatLike): Promise<string> {
    const known = this.peek(root, rel, st);
    if (known !== undefined) return known;
    const { hex, now } = await hashFile(absOf(root, rel), st, rel);
    this.record(this.index(root), rel, now, hex);
    return hex;
  }

  /**
   * The hash of a small file (up to SYNC_FILE bytes) read with synchronous calls into one shared
   * buffer, else undefined (hashSmall).
   */
  hashSync(root: string, rel: string, st: StatLike): string | undefined {
    const known = this.peek(root, rel, st);
    if (known !== undefined || st.size > SYNC_FILE) return known;
    const { hex, now } = hashSmall(absOf(root, rel), st, rel);
    this.record(this.index(root), rel, now, hex);
    return hex;
  }

  /** The records of the walked paths `rels` (sorted, as an EntryTable's) under `root`. */
  forTable(root: string, rels: readonly string[]): TableHashes {
    if (this.views === 0) this.compact();
    this.views++;
    return new TableHashes(this, this.index(root), root, rels, () => this.views--);
  }

  /**
   * A file hashed again gets a new record (records are never rewritten): in a long-lived process
   * whose contexts change, the old ones would pile up. When most are dead, the live ones move
   * into a new HashRecords. File lists still reading the old one keep it (it does not change);
   * a save writing meanwhile holds it and the lists it started with.
   */
  private compact(): void {
    let live = 0;
    for (const idx of this.roots.values()) {
      idx.fold();
      live += idx.rels.length;
    }
    if (this.records.length - live < Math.max(live, MIN_DEAD)) return;
    const from = this.records;
    const to = new HashRecords();
    for (const idx of this.roots.values()) idx.slots = idx.slots.map((slot) => to.addFrom(from, slot));
    this.records = to;
  }

  /**
   * The file's bytes in pieces of about 1 MiB (a 200,000-file cache is 17 MB: not one Buffer),
   * all in one buffer reused: the consumer (fsp.writeFile) is done with a piece when it asks for
   * the next.
   */
  private *bytes(): Generator<Buffer> {
    const PIECE = 1 << 20;
    let out = Buffer.allocUnsafe(PIECE);
    let off = MAGIC.copy(out, 0);
    const full = (n: number) => off + n > out.length;
    const next = (n: number) => {
      const piece = out.subarray(0, off);
      if (n > out.length) out = Buffer.allocUnsafe(n);
      off = 0;
      return piece;
    };
    // The pieces are written with waits between them, and another build sharing this cache may
    // record (or compact) meanwhile: the lists and records are taken here, at once; a fold or a
    // compaction makes new ones, so the count written is the count of paths written.
    const records = this.records;
    const lists = [...this.roots].map(([root, idx]) => {
      idx.fold();
      return { root, rels: idx.rels, slots: idx.slots };
    });
    for (const { root, rels, slots } of lists) {
      const rootLen = Buffer.byteLength(root);
      if (full(8 + rootLen)) yield next(8 + rootLen);
      off = out.writeUInt32LE(rootLen, off);
      off += out.write(root, off);
      off = out.writeUInt32LE(rels.length, off);
      for (let k = 0; k < rels.length; k++) {
        const rel = rels[k]!;
        const raw = hasEscapes(rel) ? nameBytes(rel) : undefined; // a name that is not UTF-8: its bytes
        const len = raw ? raw.length : Buffer.byteLength(rel);
        if (full(4 + len + RECORD)) yield next(4 + len + RECORD);
        off = out.writeUInt32LE(len, off);
        off += raw ? raw.copy(out, off) : out.write(rel, off);
        off += records.copy(slots[k]!, out, off);
      }
    }
    yield out.subarray(0, off);
  }

  async save(): Promise<void> {
    if (!this.dirty || !this.file) return;
    await fsp.mkdir(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.tmp-${process.pid}-${++saves}`; // two saves at once: two temp files
    this.dirty = false; // a record made while this writes marks it dirty again
    try {
      await fsp.writeFile(tmp, this.bytes());
      await fsp.rename(tmp, this.file);
    } catch (e) {
      this.dirty = true;
      throw e;
    }
    const st = await fsp.stat(this.file).catch(() => undefined);
    if (st) loaded.set(this.file, { stamp: stampOf(st), cache: this });
  }
}

/**
 * A cache's records for one walk table: the record of each table entry found by one merge, the
 * files read now recorded in the cache as they are hashed. Entries are the table's indexes.
 */
export class TableHashes {
  /** Entry i's record, -1 for none (found for the ranges `range` was given). */
  private slots?: Int32Array;
  /** Files `prefetch` opened and asked the kernel for, until `sync` reads them (AheadRing). */
  private ahead = new AheadRing();
  /** `sync`'s reads that took longer than a page-cache hit does (SLOW_READ_MS). */
  private slowReads = 0;

  /**
   * Whether the files read so far came from the disk (SLOW_READS of them took longer than a
   * cached read): then the caller prefetches. A context in the page cache never does, so its
   * checksum pays no fadvise (measured ~10 % slower with it, warm).
   */
  get cold(): boolean {
    return this.slowReads >= SLOW_READS;
  }

  constructor(
    private readonly cache: FileHashCache,
    private readonly idx: RootIndex,
    private readonly root: string,
    private readonly rels: readonly string[],
    /** Done with: the cache may compact again. */
    readonly close: () => void,
  ) {}

  /** What the record numbers given here index (the same while this is open). */
  get records(): HashRecords {
    return this.cache.records;
  }

  /** Find the records of entries [lo, hi) (one merge of the two sorted lists): before `sync` or `hash` of them. */
  range(lo: number, hi: number): void {
    this.slots ??= new Int32Array(this.rels.length).fill(-1); // an entry of no range: none
    this.idx.match(this.rels, lo, hi, this.slots);
  }

  /** The record of file `i` remembered for `st` (a hit, counted unless `peek`), else -1. */
  private known(i: number, st: StatLike, peek = false): number {
    const slot = this.slots![i]!;
    if (slot < 0 || !this.cache.records.matches(slot, st)) return -1;
    if (!peek) this.cache.hits++;
    return slot;
  }

  /**
   * Small file `i` (walked as `st`) is read soon by `sync`: when it is not remembered, open it now
   * (as that very file: open-same.ts) and ask the kernel to start reading it (POSIX_FADV_WILLNEED,
   * page-cache.ts), so that the reads of a context not in the page cache overlap on the disk
   * instead of waiting one file at a time (200,000 files: 18 s -> see bench/README.md, session
   * 26). False when it cannot (no addon, no fd left): the caller stops asking. An error (the file changed)
   * is left for `sync`'s own open to report.
   */
  prefetch(i: number, st: StatLike): boolean {
    if (st.size === 0 || st.size > SYNC_FILE || this.ahead.has(i) || this.known(i, st, true) >= 0) return true;
    const rel = this.rels[i]!;
    let opened: Opened;
    try {
      opened = openSameSync(absOf(this.root, rel), st, rel);
    } catch (e) {
      // out of fds: stop reading ahead (sync's own open then says what is wrong, if anything)
      const errno = (e as NodeJS.ErrnoException).code;
      return errno !== 'EMFILE' && errno !== 'ENFILE';
    }
    if (!willNeed(opened.fd, st.size)) {
      fs.closeSync(opened.fd);
      return false;
    }
    this.ahead.put(i, opened);
    return true;
  }

  /** Closes what `prefetch` opened and `sync` did not read (an error on the way, an excluded file). */
  dropAhead(): void {
    this.ahead.clear();
  }

  /** The record of small file `i` (FileHashCache.hashSync), read now if not remembered; -1 for a bigger file not remembered. */
  sync(i: number, st: StatLike): number {
    const pre = this.ahead.take(i);
    const known = this.known(i, st);
    if (known >= 0 || st.size > SYNC_FILE) {
      if (pre) fs.closeSync(pre.fd);
      return known;
    }
    const rel = this.rels[i]!;
    let hashed: Hashed;
    if (pre) hashed = hashOpened(pre, st, rel);
    else {
      const t0 = performance.now();
      hashed = hashSmall(absOf(this.root, rel), st, rel);
      if (performance.now() - t0 > SLOW_READ_MS) this.slowReads++;
    }
    return (this.slots![i] = this.cache.record(this.idx, rel, hashed.now, hashed.hex));
  }

  /** The record of file `i`, read now if not remembered. */
  async hash(i: number, st: StatLike): Promise<number> {
    const known = this.known(i, st);
    if (known >= 0) return known;
    const rel = this.rels[i]!;
    const { hex, now } = await hashFile(absOf(this.root, rel), st, rel);
    return (this.slots![i] = this.cache.record(this.idx, rel, now, hex));
  }
}

/** The host path of `rel` under `root`, as bytes when a name is not UTF-8 (fsname.ts). */
const absOf = (root: string, rel: string) => hostPath(`${root === '/' ? '' : root}/${rel}`);

/** A hash and the fstat of the file read (open-same.ts: the file `st` walked): its record's key. */
interface Hashed {
  hex: string;
  now: RecordKey;
}

/** A file opened as the file a walk saw (openSameSync), and what its record will key on. */
interface Opened {
  fd: number;
  st: RecordKey;
}

/** Small files a checksum asks the disk for ahead of reading them (TableHashes.prefetch): fds held at most. */
export const READAHEAD = 64;
/** Slots of AheadRing: the window and the entry being read fit with room to spare. */
export const AHEAD_SLOTS = 2 * READAHEAD;

/**
 * The files opened ahead (TableHashes.prefetch), entry i in slot i % AHEAD_SLOTS: the fd and the
 * four numbers its record keys on, in typed arrays. Held as a Map of fs.Stats (about 1.5 KB each,
 * stat.ts), the ~64 files in flight outlived young-generation GCs, so every prefetched file's
 * Stats was promoted to the old space: copy-huge cold, 200,000 files, about 45 MB more peak RSS
 * between full GCs (bench/README.md, session 29). An entry whose slot is taken by a later one
 * (a window over AHEAD_SLOTS) is closed: `sync` then opens it itself.
 */
class AheadRing {
  private readonly entry = new Int32Array(AHEAD_SLOTS).fill(-1);
  private readonly fd = new Int32Array(AHEAD_SLOTS);
  /** size, mtimeMs, ctimeMs, ino per slot. */
  private readonly nums = new Float64Array(AHEAD_SLOTS * 4);

  has(i: number): boolean {
    return this.entry[i % AHEAD_SLOTS] === i;
  }

  put(i: number, { fd, st }: Opened): void {
    const k = i % AHEAD_SLOTS;
    if (this.entry[k]! >= 0) fs.closeSync(this.fd[k]!);
    this.entry[k] = i;
    this.fd[k] = fd;
    const n = this.nums;
    n[k * 4] = st.size;
    n[k * 4 + 1] = st.mtimeMs;
    n[k * 4 + 2] = st.ctimeMs;
    n[k * 4 + 3] = st.ino;
  }

  /** Entry i's file, no longer held here (the caller closes it); undefined when not opened ahead. */
  take(i: number): Opened | undefined {
    const k = i % AHEAD_SLOTS;
    if (this.entry[k] !== i) return undefined;
    this.entry[k] = -1;
    const n = this.nums;
    return {
      fd: this.fd[k]!,
      st: { size: n[k * 4]!, mtimeMs: n[k * 4 + 1]!, ctimeMs: n[k * 4 + 2]!, ino: n[k * 4 + 3]! },
    };
  }

  /** Closes every file still held. */
  clear(): void {
    for (let k = 0; k < AHEAD_SLOTS; k++)
      if (this.entry[k]! >= 0) {
        fs.closeSync(this.fd[k]!);
        this.entry[k] = -1;
      }
  }
}

async function hashFile(abs: string | Buffer, st: StatLike, rel: string): Promise<Hashed> {
  if (st.size <= SYNC_FILE) return hashSmall(abs, st, rel);
  const { fd, st: now } = openSameSync(abs, st, rel);
  try {
    if (st.size > SMALL_FILE) return { hex: await hashStream(fd, st.size, rel), now };
    const buf = Buffer.allocUnsafe(st.size);
    readAllSync(fd, buf, 0, st.size, rel);
    return { hex: oneShot('sha256', buf, 'hex'), now };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The hash of a small file (up to SYNC_FILE bytes) read with synchronous calls into one shared
 * buffer: for thousands of small files, a thread-pool round trip each costs more than the read,
 * and a buffer each is garbage the heap has to grow for.
 */
function hashSmall(abs: string | Buffer, st: StatLike, rel: string): Hashed {
  return hashOpened(openSameSync(abs, st, rel), st, rel);
}

/** hashSmall of a file opened already (openSameSync's result: its fd is closed here). */
function hashOpened({ fd, st: now }: Opened, st: StatLike, rel: string): Hashed {
  try {
    readAllSync(fd, readBuf, 0, st.size, rel);
    return { hex: oneShot('sha256', readBuf.subarray(0, st.size), 'hex'), now };
  } finally {
    fs.closeSync(fd);
  }
}

const loaded = new Map<string, { stamp: string; cache: FileHashCache }>();
let saves = 0;

function stampOf(st: StatLike): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}`;
}
