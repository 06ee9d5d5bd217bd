/**
 * What a context checksum read: per path, `type:mode:content` (a file's content hash, a symlink's
 * target, '' for a directory). These are the lines of the checksum's digest and a COPY step's
 * input files (the miss reason's record). Held compactly: a file's hash as 32 bytes beside its
 * path and mode, not as a 64-character hex string inside a concatenated string per file (~150 B
 * each: 30 MB at 200,000 files). Paths are the walk's own strings.
 */
import { createHash } from 'node:crypto';
import { hasEscapes, nameBytes } from '@vlab/overlay';
import type { FileList } from '../cache/types.ts';

const HASH = 32;
const HEX64 = /^[0-9a-f]{64}$/;
const TYPES = ['file', 'dir', 'symlink'] as const;
export type DigestType = (typeof TYPES)[number];

export class FileDigests implements FileList {
  private keys: string[] = [];
  private types = new Uint8Array(256);
  private modes = new Uint16Array(256);
  private hashes = Buffer.alloc(256 * HASH);
  /** Content that is not a file's 64-hex hash (a symlink's target, an odd file hash): by entry. */
  private texts = new Map<number, string>();
  /** Entries by path, one per path (the last added wins); made on first read. */
  private sorted?: Uint32Array;

  /** Entries, counting a path added twice once. */
  get size(): number {
    return this.order().length;
  }

  /** Room for `n` more entries (a directory's count, known from the walk): no doubling on the way. */
  reserve(n: number): void {
    let need = this.keys.length + n;
    if (need <= this.types.length) return;
    need = Math.max(need, this.types.length * 2); // many small reserves still grow geometrically
    this.types = grown(this.types, new Uint8Array(need));
    this.modes = grown(this.modes, new Uint16Array(need));
    const h = Buffer.alloc(need * HASH);
    this.hashes.copy(h);
    this.hashes = h;
  }

  add(key: string, type: DigestType, mode: number, content: string): void {
    const i = this.keys.length;
    if (i === this.types.length) this.reserve(1);
    this.keys.push(key);
    this.types[i] = TYPES.indexOf(type);
    this.modes[i] = mode & 0o7777;
    if (type === 'file' && HEX64.test(content)) this.hashes.write(content, i * HASH, HASH, 'hex');
    else if (type !== 'dir' || content !== '') this.texts.set(i, content);
    this.sorted = undefined;
  }

  private value(i: number): string {
    const text = this.texts.get(i);
    const content = text ?? (this.types[i] === 1 ? '' : this.hashes.toString('hex', i * HASH, (i + 1) * HASH));
    return `${TYPES[this.types[i]!]}:${this.modes[i]}:${content}`;
  }

  /** Indexes sorted by path (JS string order, as `Object.keys(…).sort()`), the last of a path only. */
  private order(): Uint32Array {
    if (this.sorted) return this.sorted;
    const k = this.keys;
    const idx = Array.from({ length: k.length }, (_, i) => i);
    idx.sort((a, b) => (k[a]! < k[b]! ? -1 : k[a]! > k[b]! ? 1 : a - b));
    const out: number[] = [];
    for (let j = 0; j < idx.length; j++) if (j + 1 === idx.length || k[idx[j + 1]!] !== k[idx[j]!]) out.push(idx[j]!);
    this.sorted = Uint32Array.from(out);
    return this.sorted;
  }

  /** [path, value] in path order. */
  *entries(): Generator<[string, string]> {
    for (const i of this.order()) yield [this.keys[i]!, this.value(i)];
  }

  get(key: string): string | undefined {
    const o = this.order();
    let lo = 0;
    let hi = o.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.keys[o[mid]!]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo < o.length && this.keys[o[lo]!] === key ? this.value(o[lo]!) : undefined;
  }

  /** sha256 of every `path\0value\0` in path order: the checksum's digest. */
  digest(): string {
    const h = createHash('sha256');
    for (const [k, v] of this.entries()) {
      const line = `${k}\0${v}\0`;
      h.update(hasEscapes(line) ? nameBytes(line) : line); // a name that is not UTF-8: its bytes
    }
    return `sha256:${h.digest('hex')}`;
  }

  /**
   * As a plain record, in the order added (the earlier record's own order, which ADD's URL key
   * digests as JSON). `__proto__` is an own entry: assigned, it would be dropped.
   */
  toRecord(): Record<string, string> {
    const r: Record<string, string> = {};
    for (let i = 0; i < this.keys.length; i++)
      Object.defineProperty(r, this.keys[i]!, {
        value: this.value(i),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    return r;
  }
}

function grown<T extends Uint8Array | Uint16Array>(from: T, to: T): T {
  to.set(from);
  return to;
}
