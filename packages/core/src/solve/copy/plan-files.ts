/**
 * The regular files of a COPY whose one source is a context directory, held as indexes into the
 * context's walk table instead of a plan entry object, a path string and a Map entry each (~250 B
 * a file: 50 MB at 200,000 files). A file's entry is made when the plan is read, by entryOfItem
 * (the one rule every other entry follows), and is garbage once written.
 */
import path from 'node:path';
import type { BuildContext } from '../../context/context.ts';
import type { EntryTable } from '../../context/entry-table.ts';
import type { Owner } from '../ops/copy.ts';
import { entryOfItem, inodeKey, layerOrder, type Draft } from './entry.ts';

/** A context directory's entries: table indexes, each placed at its path after the first `cut` characters. */
export interface TreeSource {
  context: BuildContext;
  table: EntryTable;
  cut: number;
}

export class PlanFiles {
  private added: Uint32Array;
  private count = 0;
  private sorted?: Uint32Array;
  /** Plan path of a file ('' for the root dir) = `base` + its path after `cut`. */
  private readonly base: string;
  /** Files that are hard links to an earlier entry: layer-order position → that entry's path. */
  readonly links = new Map<number, string>();

  constructor(
    private readonly src: TreeSource,
    /** The '/'-rooted directory the files go into. */
    target: string,
    private readonly opts: { owner?: Owner; chmod?: number },
    /** How many files at most will be added. */
    capacity: number,
  ) {
    this.added = new Uint32Array(capacity);
    this.base = path.posix.join(target, 'x').slice(1, -1);
  }

  add(index: number): void {
    if (this.sorted) throw new Error('PlanFiles: add after the order was read');
    if (this.count === this.added.length) throw new Error('PlanFiles: more files than its capacity');
    this.added[this.count++] = index;
  }

  get length(): number {
    return this.count;
  }

  /** Table indexes in layer order. */
  private order(): Uint32Array {
    if (!this.sorted) {
      const rels = this.src.table.rels;
      this.sorted = this.added.subarray(0, this.count).sort((a, b) => layerOrder(rels[a]!, rels[b]!));
    }
    return this.sorted;
  }

  /** The plan path of the file at layer-order position `k`. */
  path(k: number): string {
    return this.base + this.src.table.rels[this.order()[k]!]!.slice(this.src.cut);
  }

  /** The plan path of its parent directory. */
  parent(k: number): string {
    const rel = this.src.table.rels[this.order()[k]!]!;
    const slash = rel.lastIndexOf('/');
    return slash >= this.src.cut ? this.base + rel.slice(this.src.cut, slash) : this.base.slice(0, -1);
  }

  /** `dev:ino` of a file with other hard links, else undefined (as entryOfItem's `inode`). */
  inode(k: number): string | undefined {
    const i = this.order()[k]!;
    return this.src.table.nlink(i) > 1 ? inodeKey(this.src.table.stat(i)) : undefined;
  }

  /** The entry of the file at layer-order position `k`, as entryOfItem makes it (a fresh object). */
  entry(k: number): Draft {
    const { context, table, cut } = this.src;
    const i = this.order()[k]!;
    const rel = table.rels[i]!;
    const item = { src: context.abs(rel), rel: rel.slice(cut), stats: table.stat(i) };
    const d = entryOfItem(item, `/${this.base}${item.rel}`, this.opts);
    const link = this.links.get(k);
    if (link !== undefined) Object.assign(d, { type: 'link', linkname: link, size: 0, source: undefined });
    return d;
  }
}
