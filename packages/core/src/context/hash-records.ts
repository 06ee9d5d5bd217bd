/**
 * The hash cache's memory (hash-cache.ts): fixed 64-byte records in 256 KiB buffers, and per
 * context root its paths as one sorted list beside their record numbers. A Map of 200,000 paths
 * was 8 MB of tables, and as many again of the smaller tables it grew through; here a path costs
 * a slot in an array and 4 bytes, and the build's own walk table is matched against it by one
 * merge of two sorted lists (TableHashes, hash-cache.ts).
 */
import type { StatLike } from './walk.ts';

/** size, mtimeMs, ctimeMs, ino (float64 LE each), sha256 (32 bytes). */
export const RECORD = 64;

/** What a record keys on: of the fstat of the file hashed. */
export type RecordKey = Pick<StatLike, 'size' | 'mtimeMs' | 'ctimeMs' | 'ino'>;
const HASH_AT = 32;
/** Records per buffer (256 KiB): the records grow by a buffer, never copied into a doubled one. */
const CHUNK_BITS = 12;
const CHUNK = 1 << CHUNK_BITS;
const MASK = CHUNK - 1;

/**
 * Records, append-only: a record is never written again once added (a file whose stat changed
 * gets a new one), so a checksum may keep reading its hash from here (file-digests.ts) while
 * other builds record. The cache compacts into a new HashRecords, never this one.
 */
export class HashRecords {
  private readonly chunks: Buffer[] = [];
  length = 0;

  private next(): number {
    if ((this.length & MASK) === 0) this.chunks.push(Buffer.allocUnsafe(CHUNK * RECORD));
    return this.length++;
  }

  /** A new record of `st` and the hash `hex` (64 hex digits): its number. */
  add(st: RecordKey, hex: string): number {
    const slot = this.next();
    const [d, at] = this.at(slot);
    d.writeDoubleLE(st.size, at);
    d.writeDoubleLE(st.mtimeMs, at + 8);
    d.writeDoubleLE(st.ctimeMs, at + 16);
    d.writeDoubleLE(st.ino, at + 24);
    d.write(hex, at + HASH_AT, 32, 'hex');
    return slot;
  }

  /** A new record copied from RECORD bytes of `b` at `off` (a file being loaded). */
  addBytes(b: Buffer, off: number): number {
    const slot = this.next();
    const [d, at] = this.at(slot);
    b.copy(d, at, off, off + RECORD);
    return slot;
  }

  /** Whether record `slot` describes `st` (same size, mtime, ctime, inode). */
  matches(slot: number, st: StatLike): boolean {
    const [d, at] = this.at(slot);
    return (
      d.readDoubleLE(at) === st.size &&
      d.readDoubleLE(at + 8) === st.mtimeMs &&
      d.readDoubleLE(at + 16) === st.ctimeMs &&
      d.readDoubleLE(at + 24) === st.ino
    );
  }

  /** The hash of record `slot`, as 64 hex digits. */
  hex(slot: number): string {
    const [d, at] = this.at(slot);
    return d.toString('hex', at + HASH_AT, at + RECORD);
  }

  /** A new record copied from record `slot` of `from` (compacting). */
  addFrom(from: HashRecords, slot: number): number {
    const to = this.next();
    const [d, at] = this.at(to);
    from.copy(slot, d, at);
    return to;
  }

  /** Copy record `slot` (RECORD bytes) into `out` at `off`; returns RECORD. */
  copy(slot: number, out: Buffer, off: number): number {
    const [d, at] = this.at(slot);
    return d.copy(out, off, at, at + RECORD);
  }

  private at(slot: number): [Buffer, number] {
    return [this.chunks[slot >>> CHUNK_BITS]!, (slot & MASK) * RECORD];
  }
}

/**
 * One root's paths: `rels` sorted (JS string order, one entry a path) with their records in
 * `slots`; records made since the last fold wait in `added`, in the order made (the last of a
 * path wins). A fold makes new arrays, never changes the ones it replaces: a save that is writing
 * them meanwhile writes what it started with.
 */
export class RootIndex {
  rels: string[] = [];
  slots = new Uint32Array(0);
  private addedRels: string[] = [];
  private addedSlots = new Uint32Array(256);

  add(rel: string, slot: number): void {
    const n = this.addedRels.length;
    if (n === this.addedSlots.length) {
      const grown = new Uint32Array(n * 2);
      grown.set(this.addedSlots);
      this.addedSlots = grown;
    }
    this.addedRels.push(rel);
    this.addedSlots[n] = slot;
  }

  /** Merge the records made since the last fold into `rels`/`slots`. */
  fold(): void {
    const ar = this.addedRels;
    if (ar.length === 0) return;
    const as = this.addedSlots;
    this.addedRels = [];
    this.addedSlots = new Uint32Array(256);
    // A build records in its walk's order (sorted): then no sort is needed.
    let order: Uint32Array | undefined;
    for (let k = 1; k < ar.length; k++)
      if (!(ar[k - 1]! < ar[k]!)) {
        order = Uint32Array.from(ar.keys()).sort((a, b) => (ar[a]! < ar[b]! ? -1 : ar[a]! > ar[b]! ? 1 : a - b));
        break;
      }
    const { rels, slots } = this;
    if (!order && rels.length === 0) {
      this.rels = ar; // sorted, each path once: the fold is the list itself (a cold build's)
      this.slots = as.slice(0, ar.length);
      return;
    }
    const outRels: string[] = [];
    const outSlots = new Uint32Array(rels.length + ar.length);
    let i = 0;
    let n = 0;
    const put = (rel: string, slot: number) => {
      // equal paths come together here, the newer last: it replaces the older
      if (n > 0 && outRels[n - 1] === rel) outSlots[n - 1] = slot;
      else {
        outRels.push(rel);
        outSlots[n++] = slot;
      }
    };
    for (let k = 0; k < ar.length; k++) {
      const a = order ? order[k]! : k;
      const rel = ar[a]!;
      while (i < rels.length && rels[i]! <= rel) put(rels[i]!, slots[i++]!);
      put(rel, as[a]!);
    }
    while (i < rels.length) put(rels[i]!, slots[i++]!);
    this.rels = outRels;
    this.slots = n === outSlots.length ? outSlots : outSlots.slice(0, n);
  }

  /** The record of `rel`, or -1 (folds first). */
  find(rel: string): number {
    this.fold();
    const j = this.lowerBound(rel);
    return this.rels[j] === rel ? this.slots[j]! : -1;
  }

  /**
   * Into `out[lo..hi)` the record of each of `sorted[lo..hi)` (paths sorted as `rels`: a walk
   * table's), -1 where there is none: one merge. A path found takes the caller's string, so a
   * cache loaded from disk stops holding its own copy of every path the walk has too.
   */
  match(sorted: readonly string[], lo: number, hi: number, out: Int32Array): void {
    this.fold();
    const r = this.rels;
    let j = lo < hi ? this.lowerBound(sorted[lo]!) : r.length;
    for (let i = lo; i < hi; i++) {
      const rel = sorted[i]!;
      while (j < r.length && r[j]! < rel) j++;
      if (j < r.length && r[j] === rel) {
        out[i] = this.slots[j]!;
        r[j] = rel; // an equal string: a save writing `r` meanwhile writes the same bytes
      } else out[i] = -1;
    }
  }

  private lowerBound(rel: string): number {
    const r = this.rels;
    let lo = 0;
    let hi = r.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (r[mid]! < rel) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
