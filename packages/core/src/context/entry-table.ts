/**
 * Walked entries as parallel typed arrays over one array of paths: an entry is an index, not an
 * object. A 200,000-file context held an EntryStat (11 numbers, some boxed), a record object and
 * a Map entry per file (~300 B); here it is its path string and 72 bytes of numbers. Sorted by
 * path (JS string order), so a directory's subtree is one index range and a path is found by
 * binary search. Objects (EntryStat) are made only when asked for, and are garbage at once.
 */
import { EntryStat, type StatLike } from './stat.ts';

/** dev, ino, rdev, size, atimeMs, mtimeMs, ctimeMs per entry (float64: exact for every stat number). */
const F64 = 7;
/** mode, nlink, uid, gid per entry. */
const U32 = 4;

const byPath = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Appends entries; `finish` sorts them into an EntryTable. */
export class EntryTableBuilder {
  private rels: string[] = [];
  private f64 = new Float64Array(1024 * F64);
  private u32 = new Uint32Array(1024 * U32);

  get length(): number {
    return this.rels.length;
  }

  add(rel: string, st: StatLike): void {
    const { dev, ino, mode, nlink, uid, gid, rdev, size } = st;
    this.addNumbers(rel, dev, ino, mode, nlink, uid, gid, rdev, size, st.atimeMs, st.mtimeMs, st.ctimeMs);
  }

  /** An entry from its lstat numbers, in EntryStat's order. */
  addNumbers(
    rel: string,
    dev: number,
    ino: number,
    mode: number,
    nlink: number,
    uid: number,
    gid: number,
    rdev: number,
    size: number,
    atimeMs: number,
    mtimeMs: number,
    ctimeMs: number,
  ): void {
    const i = this.rels.length;
    if ((i + 1) * F64 > this.f64.length) {
      const f64 = new Float64Array(this.f64.length * 2);
      f64.set(this.f64);
      this.f64 = f64;
      const u32 = new Uint32Array(this.u32.length * 2);
      u32.set(this.u32);
      this.u32 = u32;
    }
    this.rels.push(rel);
    const a = this.f64;
    const f = i * F64;
    a[f] = dev;
    a[f + 1] = ino;
    a[f + 2] = rdev;
    a[f + 3] = size;
    a[f + 4] = atimeMs;
    a[f + 5] = mtimeMs;
    a[f + 6] = ctimeMs;
    const u = i * U32;
    this.u32[u] = mode;
    this.u32[u + 1] = nlink;
    this.u32[u + 2] = uid;
    this.u32[u + 3] = gid;
  }

  rel(i: number): string {
    return this.rels[i]!;
  }

  mode(i: number): number {
    return this.u32[i * U32]!;
  }

  /** Every index, sorted by path. */
  sorted(): number[] {
    const order = Array.from({ length: this.rels.length }, (_, i) => i);
    return order.sort((a, b) => byPath(this.rels[a]!, this.rels[b]!));
  }

  /** The table of entries `order` (indexes from `sorted`, in that order); the builder is empty after. */
  finish(order: readonly number[] = this.sorted()): EntryTable {
    const rels = new Array<string>(order.length);
    const f64 = new Float64Array(order.length * F64);
    const u32 = new Uint32Array(order.length * U32);
    for (let j = 0; j < order.length; j++) {
      const i = order[j]!;
      rels[j] = this.rels[i]!;
      f64.set(this.f64.subarray(i * F64, (i + 1) * F64), j * F64);
      u32.set(this.u32.subarray(i * U32, (i + 1) * U32), j * U32);
    }
    this.rels = [];
    this.f64 = new Float64Array(0);
    this.u32 = new Uint32Array(0);
    return new EntryTable(rels, f64, u32);
  }
}

export class EntryTable {
  constructor(
    /** Paths relative to the walked root, '/'-separated, sorted. */
    readonly rels: readonly string[],
    private readonly f64: Float64Array,
    private readonly u32: Uint32Array,
  ) {}

  get length(): number {
    return this.rels.length;
  }

  mode(i: number): number {
    return this.u32[i * U32]!;
  }

  nlink(i: number): number {
    return this.u32[i * U32 + 1]!;
  }

  /** The lstat numbers of entry `i` as an object (fresh each call). */
  stat(i: number): EntryStat {
    const f = i * F64;
    const u = i * U32;
    const a = this.f64;
    const b = this.u32;
    return new EntryStat(
      a[f]!,
      a[f + 1]!,
      b[u]!,
      b[u + 1]!,
      b[u + 2]!,
      b[u + 3]!,
      a[f + 2]!,
      a[f + 3]!,
      a[f + 4]!,
      a[f + 5]!,
      a[f + 6]!,
    );
  }

  /** Index of `rel`, or -1. */
  find(rel: string): number {
    const i = this.lowerBound(rel);
    return this.rels[i] === rel ? i : -1;
  }

  /** The index range of the entries strictly under directory `rel` ('' = every entry). */
  under(rel: string): [number, number] {
    if (rel === '') return [0, this.rels.length];
    // '0' is the character after '/': every "rel/…" sorts in ["rel/", "rel0").
    return [this.lowerBound(`${rel}/`), this.lowerBound(`${rel}0`)];
  }

  private lowerBound(rel: string): number {
    let lo = 0;
    let hi = this.rels.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.rels[mid]! < rel) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
