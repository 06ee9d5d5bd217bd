import fsp from 'node:fs/promises';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { changedError, readlinkInRoot, statDirInRoot } from '@vlab/overlay';
import { compileIgnore, loadIgnore, type IgnoreMatcher } from './ignore.ts';
import { compileGlob } from './patterns.ts';
import { resolveInRoot } from '../fsutil/in-root.ts';
import { READAHEAD, type FileHashCache, type TableHashes } from './hash-cache.ts';
import { walkTree, type StatLike } from './walk.ts';
import type { EntryTable } from './entry-table.ts';
import { FileDigests } from './file-digests.ts';
import { phases } from '../debug/phases.ts';

const HASH_BATCH = 32;
/** Longest the context walk keeps the event loop to itself. */
const WALK_SLICE_MS = 20;

export interface ContextEntry {
  /** Path relative to the context root, '/'-separated, no leading './'. */
  rel: string;
  abs: string;
  /** `abs` relative to the context root: `rel` itself, or what `rel` resolves to through symlinks (in the context). */
  content: string;
  type: 'file' | 'dir' | 'symlink';
  stats: StatLike;
}

export interface SourceSelection {
  /** The source pattern as written (after expansion). */
  pattern: string;
  /** Top-level matches: a file, a symlink or a directory (whose subtree is copied). */
  roots: ContextEntry[];
}

const S_IFMT = 0o170000;
/** The entry type of an lstat mode: what a context holds (fifos, sockets, devices are left out). */
function typeOf(mode: number): ContextEntry['type'] | undefined {
  const t = mode & S_IFMT;
  return t === 0o040000 ? 'dir' : t === 0o120000 ? 'symlink' : t === 0o100000 ? 'file' : undefined;
}

/**
 * The build context: a directory walked once (walk.ts) into a table (entry-table.ts), filtered by
 * .dockerignore. COPY sources are resolved against it; anything outside the root is refused
 * (E_CONTEXT_ESCAPE). Entries are indexes into the table; a ContextEntry object is made only for
 * what a caller holds (a COPY's roots, the few files hashed asynchronously).
 */
export class BuildContext {
  private entries?: Promise<EntryTable>;
  /** Paths .dockerignore excludes, sorted (a directory's children listed too). */
  private ignored: string[] = [];

  private constructor(
    readonly root: string,
    readonly ignore: IgnoreMatcher,
    private readonly hashes: FileHashCache,
    private readonly signal?: AbortSignal,
  ) {}

  static async open(
    root: string,
    hashes: FileHashCache,
    dockerfilePath?: string,
    signal?: AbortSignal,
  ): Promise<BuildContext> {
    const abs = path.resolve(root);
    const st = await fsp.stat(abs).catch(() => undefined);
    if (!st?.isDirectory()) throw new VlabError('E_CONTEXT', `build context ${root} is not a directory`);
    return new BuildContext(abs, await loadIgnore(abs, dockerfilePath), hashes, signal);
  }

  /** All entries not excluded by .dockerignore, sorted by path (walked once, on first use). */
  walk(): Promise<EntryTable> {
    this.entries ??= this.walkOnce();
    return this.entries;
  }

  /** Entry `i` of the walk's table as an object. */
  entry(t: EntryTable, i: number): ContextEntry {
    const rel = t.rels[i]!;
    return { rel, abs: this.abs(rel), content: rel, type: typeOf(t.mode(i))!, stats: t.stat(i) };
  }

  /**
   * The metadata of directory `rel` ('' = the root): the walk's, else (the root, a parent that
   * .dockerignore excludes) its fstat through an fd opened in the context (statDirInRoot): never
   * what a symlink swapped in since the walk leads to.
   */
  dirStats(t: EntryTable, rel: string): StatLike {
    const i = rel ? t.find(rel) : -1;
    return i >= 0 && typeOf(t.mode(i)) === 'dir' ? t.stat(i) : statDirInRoot(this.root, rel);
  }

  /** The host path of a walked path. */
  abs(rel: string): string {
    return `${this.root === '/' ? '' : this.root}/${rel}`;
  }

  private async walkOnce(): Promise<EntryTable> {
    const lap = phases('context');
    const found = await walkTree(this.root, this.signal);
    lap('walk');
    const kept = found.sorted(); // the entries kept are written over it, in order
    let n = 0;
    let slice = Date.now();
    for (const i of kept) {
      // Matching is patterns x entries x depth: a big .dockerignore takes a while. Let the event
      // loop (Ctrl-C, timers) run every few ms, and stop when the build is aborted.
      if (Date.now() - slice > WALK_SLICE_MS) {
        await new Promise((r) => setImmediate(r));
        slice = Date.now();
      }
      if (this.signal?.aborted) throw new VlabError('E_ABORTED', 'build aborted');
      const rel = found.rel(i);
      if (this.ignore.ignores(rel)) this.ignored.push(rel);
      else if (typeOf(found.mode(i))) kept[n++] = i;
    }
    const table = found.finish(kept.slice(0, n));
    lap('index');
    return table;
  }

  /**
   * What the context shows at `rel` ('' = the root), as BuildKit transfers it: `hides` when
   * .dockerignore excludes something at or under it, `shown` unless it is itself excluded with
   * nothing under it re-included (`!d/keep` keeps `d` as keep's parent).
   */
  async shows(rel: string): Promise<{ shown: boolean; hides: boolean }> {
    const t = await this.walk();
    const under = (p: string) => rel === '' || p === rel || p.startsWith(`${rel}/`);
    const hides = this.ignored.some(under);
    const [lo, hi] = t.under(rel);
    const shown = !hides || t.find(rel) >= 0 || hi > lo;
    return { shown: rel === '' || shown, hides };
  }

  /**
   * Resolve a COPY/ADD source (path or glob with * ? [..]) to entries. A leading '/' is the
   * context root; '..' that leaves the root is refused.
   */
  async select(pattern: string): Promise<SourceSelection> {
    const clean = path.posix.normalize(`/${pattern}`).slice(1).replace(/\/$/, '');
    if (path.posix.normalize(pattern).startsWith('../') || path.posix.normalize(pattern) === '..') {
      throw new VlabError('E_CONTEXT_ESCAPE', `COPY source "${pattern}" is outside the build context`);
    }
    const t = await this.walk();
    const roots: ContextEntry[] = [];
    if (clean === '' || clean === '.') {
      roots.push({ rel: '', abs: this.root, content: '', type: 'dir', stats: this.dirStats(t, '') });
    } else if (/[*?[]/.test(clean)) {
      // BuildKit (fsutil ResolveWildcards): the components before the first wildcard are resolved
      // in the context, the rest is matched below that, and a match that is a symlink is followed.
      const parts = clean.split('/');
      const at = parts.findIndex((c) => /[*?[]/.test(c));
      const prefix = parts.slice(0, at).join('/');
      const base = prefix ? (await this.resolve(prefix))?.content : '';
      const matches = compileGlob(parts.slice(at).join('/'));
      const [lo, hi] = base === undefined ? [0, 0] : t.under(base);
      for (let i = lo; i < hi; i++) {
        const sub = base ? t.rels[i]!.slice(base.length + 1) : t.rels[i]!;
        if (!matches(sub)) continue;
        const rel = prefix ? `${prefix}/${sub}` : sub;
        roots.push(typeOf(t.mode(i)) === 'symlink' ? (await this.resolve(rel))! : { ...this.entry(t, i), rel });
      }
    } else {
      const e = await this.resolve(clean);
      if (e) roots.push(e);
    }
    if (roots.length === 0) {
      throw new VlabError(
        'E_COPY_SOURCE',
        `COPY source "${pattern}" not found in build context (or excluded by .dockerignore)`,
      );
    }
    return { pattern, roots };
  }

  /** The table and the index range of the entries under a directory root, in sorted order (the root itself not in it). */
  async subtree(root: ContextEntry): Promise<{ table: EntryTable; lo: number; hi: number }> {
    const table = await this.walk();
    const [lo, hi] = table.under(root.content);
    return { table, lo, hi };
  }

  /**
   * Checksum of what a selection would copy: paths, types, modes, owners, link targets and file
   * content. Content hashes come from the (path,size,mtime,inode) cache, so a hit reads nothing.
   */
  async checksum(
    selections: SourceSelection[],
    exclude: string[] = [],
  ): Promise<{ digest: string; files: FileDigests }> {
    const lap = phases('context');
    const files = new FileDigests();
    const t = await this.walk();
    const cached = this.hashes.forTable(this.root, t.rels);
    try {
      await this.hashInto(files, cached, t, selections, exclude);
    } finally {
      cached.dropAhead();
      cached.close();
    }
    const digest = files.digest();
    lap('checksum');
    return { digest, files };
  }

  private async hashInto(
    files: FileDigests,
    cached: TableHashes,
    t: EntryTable,
    selections: SourceSelection[],
    exclude: string[],
  ): Promise<void> {
    const excluded = excluder(exclude);
    const records = cached.records;
    for (const sel of selections) {
      for (const root of sel.roots) {
        const [lo, hi] = root.type === 'dir' ? t.under(root.content) : [0, 0];
        // Files whose hash is remembered cost no I/O: done here, synchronously. The rest (big
        // files, symlinks; table indexes, the root as its entry) read in bounded parallel: enough
        // to overlap reads, far from EMFILE, and added in this order (ADD digests the record).
        // Small files not yet hashed are read synchronously too, yielding to the event loop now and then.
        const rest: (number | ContextEntry)[] = [];
        const hash =
          root.type === 'file'
            ? this.hashes.hashSync(this.root, root.content, root.stats)
            : root.type === 'dir'
              ? ''
              : undefined;
        if (hash === undefined) rest.push(root);
        else files.add(root.rel || '.', root.type, root.stats.mode, hash);
        files.reserve(hi - lo);
        if (hi > lo) cached.range(lo, hi);
        let slice = Date.now();
        // Once reads come from the disk (TableHashes.cold), files up to READAHEAD ahead are asked
        // for (TableHashes.prefetch): the reads of an uncached context overlap; a cached one pays nothing.
        let next = lo;
        let ahead = READAHEAD;
        const wanted = (j: number) =>
          typeOf(t.mode(j)) === 'file' && !(exclude.length && excluded(relativeTo(root.content, t.rels[j]!)));
        for (let i = lo; i < hi; i++) {
          if (ahead && next <= i) next = i + 1;
          for (; ahead && cached.cold && next < hi && next <= i + ahead; next++)
            if (wanted(next) && !cached.prefetch(next, t.stat(next))) ahead = 0;
          const rel = t.rels[i]!;
          if (exclude.length && excluded(relativeTo(root.content, rel))) continue;
          const mode = t.mode(i);
          const type = typeOf(mode)!;
          const slot = type === 'file' ? cached.sync(i, t.stat(i)) : -1;
          if (slot >= 0) files.addFile(rel, mode, records, slot);
          else if (type === 'dir') files.add(rel, type, mode, '');
          else rest.push(i);
          if (Date.now() - slice > WALK_SLICE_MS) {
            await new Promise((r) => setImmediate(r));
            slice = Date.now();
          }
        }
        for (let k = 0; k < rest.length; k += HASH_BATCH) {
          await Promise.all(
            rest.slice(k, k + HASH_BATCH).map(async (r) => {
              if (typeof r === 'number') {
                if (typeOf(t.mode(r)) === 'file')
                  files.addFile(t.rels[r]!, t.mode(r), records, await cached.hash(r, t.stat(r)));
                else files.add(t.rels[r]!, 'symlink', t.mode(r), readlinkInRoot(this.root, t.rels[r]!));
                return;
              }
              const content =
                r.type === 'file'
                  ? await this.hashes.hash(this.root, r.content, r.stats)
                  : readlinkInRoot(this.root, r.content, r.rel);
              files.add(r.rel || '.', r.type, r.stats.mode, content);
            }),
          );
        }
      }
    }
  }

  /**
   * The entry a source path names (`rel` as written, `content` what it resolves to), or undefined
   * when nothing is there. Symlinks on the way and at the end are followed inside the context: the
   * one rule of BuildKit (fs.RootPath: its context is a root symlinks cannot leave) and of our bind
   * mounts (bind-source.ts), so `link -> /etc/passwd` means `<context>/etc/passwd`. A link whose
   * target is not there is E_CONTEXT_ESCAPE when a link on the way points out of the context on
   * the host (read from the link's text alone: no host lookup) and what it means inside is not
   * there either; E_COPY_SOURCE otherwise (a dangling link, or one through an absolute link that
   * resolved inside). Both say what BuildKit says, `"/target": not found`.
   */
  private async resolve(rel: string): Promise<ContextEntry | undefined> {
    const t = await this.walk();
    const at = t.find(rel);
    if (at >= 0 && typeOf(t.mode(at)) !== 'symlink') return this.entry(t, at);
    const roots = [this.root, await fsp.realpath(this.root)];
    const onHost = (h: string) => roots.some((r) => h === r || h.startsWith(`${r}/`));
    let out: string | undefined; // the first link whose host target is outside and whose in-context one is missing
    const onLink = (dir: string, to: string) => {
      const host = to.startsWith('/') ? path.posix.normalize(to) : path.posix.join(this.root, dir, to);
      const inside = path.posix.normalize(to.startsWith('/') ? to : `/${dir}/${to}`).slice(1); // '..' stops at the root
      if (out === undefined && !onHost(host) && (!inside || t.find(inside) < 0)) out = to;
    };
    const target = path.relative(this.root, await resolveInRoot(this.root, rel, true, onLink));
    if (at < 0 && target === rel) return undefined; // no link on the way: simply not there
    const i = target ? t.find(target) : -1;
    // links were followed live: ending on what the walk saw as a link means the context changed
    if (i >= 0 && typeOf(t.mode(i)) === 'symlink') throw changedError(rel);
    if (i >= 0) return { ...this.entry(t, i), rel };
    const notFound = `COPY source "${rel}": "/${target}": not found`;
    if (out !== undefined)
      throw new VlabError(
        'E_CONTEXT_ESCAPE',
        `${notFound} (a symlink on the way points to "${out}", outside the build context; symlinks are resolved inside the context, as BuildKit does, never on the host)`,
        { details: { source: rel, target: `/${target}` } },
      );
    throw new VlabError(
      'E_COPY_SOURCE',
      `${notFound} in the build context, or excluded by .dockerignore ("${rel}" is a symlink, resolved inside the context as BuildKit does)`,
      { details: { source: rel, target: `/${target}` } },
    );
  }
}

/**
 * `COPY --exclude` patterns: dockerignore syntax (`**`, `!`), matched against paths relative to
 * the source being copied (BuildKit's rule), so `--exclude=*.log dir/` drops `dir/a.log`.
 */
export function excluder(patterns: string[]): (relToSource: string) => boolean {
  if (!patterns.length) return () => false;
  const m = compileIgnore(patterns.join('\n'), 'COPY --exclude', 'E_BAD_FLAG');
  return (rel) => m.ignores(rel);
}

export function relativeTo(rootRel: string, rel: string): string {
  return rootRel && rel.startsWith(`${rootRel}/`) ? rel.slice(rootRel.length + 1) : rel;
}
