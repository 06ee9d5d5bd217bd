/**
 * Walked entries as typed arrays beside one array of paths: an entry is an index, not an object.
 * A 200,000-file context held an EntryStat (11 numbers, some boxed), a record object and a Map
 * entry per file (~300 B); here it is its path string and 72 bytes of numbers. The numbers stay
 * where the walk wrote them, in fixed chunks (never a doubled array copied, nor a sorted copy);
 * the table is sorted by path (JS string order) through a permutation, so a directory's subtree
 * is one index range and a path is found by binary search. EntryStat objects are made only when
 * asked for, and are garbage at once.
 */
import { EntryStat, type StatLike } from './stat.ts';

/** dev, ino, rdev, size, atimeMs, mtimeMs, ctimeMs per entry (float64: exact for every stat number). */
const F64 = 7;
/** mode, nlink, uid, gid per entry. */
const U32 = 4;
/** Entries per chunk. */
const BITS = 12;
const CHUNK = 1 << BITS;
const MASK = CHUNK - 1;

const byPath = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The numbers of walked entries, by walk order. */
class Numbers {
  readonly f64: Float64Array[] = [];
  readonly u32: Uint32Array[] = [];

  mode(j: number): number {
    return this.u32[j >>> BITS]![(j & MASK) * U32]!;
  }

  nlink(j: number): number {
    return this.u32[j >>> BITS]![(j & MASK) * U32 + 1]!;
  }

  stat(j: number): EntryStat {
    const a = this.f64[j >>> BITS]!;
    const b = this.u32[j >>> BITS]!;
    const f = (j & MASK) * F64;
    const u = (j & MASK) * U32;
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
}

/** Appends entries; `finish` sorts them into an EntryTable. */
export class EntryTableBuilder {
  /** Paths by walk order, in chunks of CHUNK (as the numbers: never a grown array copied). */
  private rels: string[][] = [];
  private count = 0;
  private readonly nums = new Numbers();

  get length(): number {
    return this.count;
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
    const j = this.count++;
    if ((j & MASK) === 0) {
      this.nums.f64.push(new Float64Array(CHUNK * F64));
      this.nums.u32.push(new Uint32Array(CHUNK * U32));
      this.rels.push(new Array<string>(CHUNK));
    }
    this.rels[j >>> BITS]![j & MASK] = rel;
    const a = this.nums.f64[j >>> BITS]!;
    const f = (j & MASK) * F64;
    a[f] = dev;
    a[f + 1] = ino;
    a[f + 2] = rdev;
    a[f + 3] = size;
    a[f + 4] = atimeMs;
    a[f + 5] = mtimeMs;
    a[f + 6] = ctimeMs;
    const b = this.nums.u32[j >>> BITS]!;
    const u = (j & MASK) * U32;
    b[u] = mode;
    b[u + 1] = nlink;
    b[u + 2] = uid;
    b[u + 3] = gid;
  }

  rel(j: number): string {
    return this.rels[j >>> BITS]![j & MASK]!;
  }

  mode(j: number): number {
    return this.nums.mode(j);
  }

  /** Every index, sorted by path. */
  sorted(): Uint32Array {
    const order = new Uint32Array(this.count);
    for (let j = 0; j < order.length; j++) order[j] = j;
    return order.sort((a, b) => byPath(this.rel(a), this.rel(b)));
  }

  /** The table of entries `order` (indexes from `sorted`, in that order); the builder is empty after. */
  finish(order: Uint32Array = this.sorted()): EntryTable {
    const rels = new Array<string>(order.length);
    for (let i = 0; i < order.length; i++) rels[i] = this.rel(order[i]!);
    this.rels = [];
    return new EntryTable(rels, this.nums, order);
  }
}

export class EntryTable {
  constructor(
    /** Paths relative to the walked root, '/'-separated, sorted. */
    readonly rels: readonly string[],
    private readonly nums: Numbers,
    /** Entry i's numbers are the walk's entry at[i]. */
    private readonly at: Uint32Array,
  ) {}

  get length(): number {
    return this.rels.length;
  }

  mode(i: number): number {
    return this.nums.mode(this.at[i]!);
  }

  nlink(i: number): number {
    return this.nums.nlink(this.at[i]!);
  }

  /** The lstat numbers of entry `i` as an object (fresh each call). */
  stat(i: number): EntryStat {
    return this.nums.stat(this.at[i]!);
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
