import fsp from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { VlabError } from '@vlab/errors';
import { compileIgnore, loadIgnore, type IgnoreMatcher } from './ignore.ts';
import { compileGlob } from './patterns.ts';
import { resolveInRoot } from '../fsutil/in-root.ts';
import type { FileHashCache } from './hash-cache.ts';
import { walkTree, type StatLike } from './walk.ts';
import { phases } from '../debug/phases.ts';

const HASH_BATCH = 32;
/** Longest the context walk keeps the event loop to itself. */
const WALK_SLICE_MS = 20;

export interface ContextEntry {
  /** Path relative to the context root, '/'-separated, no leading './'. */
  rel: string;
  abs: string;
  /** `abs` relative to the context root: `rel` itself, or what a top-level symlink points to. */
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

/**
 * The build context: a directory walked once (walk.ts), filtered by .dockerignore. COPY
 * sources are resolved against it; anything outside the root is refused (E_CONTEXT_ESCAPE).
 */
export class BuildContext {
  private entries?: Promise<Map<string, ContextEntry>>;
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

  /** All entries not excluded by .dockerignore (walked once, on first use). */
  walk(): Promise<Map<string, ContextEntry>> {
    this.entries ??= this.walkOnce();
    return this.entries;
  }

  private async walkOnce(): Promise<Map<string, ContextEntry>> {
    const lap = phases('context');
    const found = await walkTree(this.root, this.signal);
    lap('walk');
    found.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
    const entries = new Map<string, ContextEntry>();
    const base = this.root === '/' ? '' : this.root;
    let slice = Date.now();
    for (const { rel, stats } of found) {
      // Matching is patterns x entries x depth: a big .dockerignore takes a while. Let the event
      // loop (Ctrl-C, timers) run every few ms, and stop when the build is aborted.
      if (Date.now() - slice > WALK_SLICE_MS) {
        await new Promise((r) => setImmediate(r));
        slice = Date.now();
      }
      if (this.signal?.aborted) throw new VlabError('E_ABORTED', 'build aborted');
      if (this.ignore.ignores(rel)) {
        this.ignored.push(rel);
        continue;
      }
      const type = stats.isDirectory()
        ? 'dir'
        : stats.isSymbolicLink()
          ? 'symlink'
          : stats.isFile()
            ? 'file'
            : undefined;
      if (type) entries.set(rel, { rel, abs: `${base}/${rel}`, content: rel, type, stats });
    }
    lap('index');
    return entries;
  }

  /**
   * What the context shows at `rel` ('' = the root), as BuildKit transfers it: `hides` when
   * .dockerignore excludes something at or under it, `shown` unless it is itself excluded with
   * nothing under it re-included (`!d/keep` keeps `d` as keep's parent).
   */
  async shows(rel: string): Promise<{ shown: boolean; hides: boolean }> {
    const entries = await this.walk();
    const under = (p: string) => rel === '' || p === rel || p.startsWith(`${rel}/`);
    const hides = this.ignored.some(under);
    const shown = !hides || entries.has(rel) || [...entries.keys()].some(under);
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
    const entries = await this.walk();
    const roots: ContextEntry[] = [];
    if (clean === '' || clean === '.') {
      const st = await fsp.lstat(this.root);
      roots.push({ rel: '', abs: this.root, content: '', type: 'dir', stats: st });
    } else if (/[*?[]/.test(clean)) {
      const matches = compileGlob(clean);
      for (const e of entries.values()) if (matches(e.rel)) roots.push(e);
    } else {
      const e = entries.get(clean);
      if (e) roots.push(await this.followTopLevel(e));
    }
    if (roots.length === 0) {
      throw new VlabError(
        'E_COPY_SOURCE',
        `COPY source "${pattern}" not found in build context (or excluded by .dockerignore)`,
      );
    }
    return { pattern, roots };
  }

  /** Entries under a directory root, in sorted order (excluding the root itself). */
  async subtree(root: ContextEntry): Promise<ContextEntry[]> {
    const entries = await this.walk();
    if (root.rel === '') return [...entries.values()];
    const prefix = `${root.rel}/`;
    const out: ContextEntry[] = [];
    for (const e of entries.values()) if (e.rel.startsWith(prefix)) out.push(e);
    return out;
  }

  /**
   * Checksum of what a selection would copy: paths, types, modes, owners, link targets and file
   * content. Content hashes come from the (path,size,mtime,inode) cache, so a hit reads nothing.
   */
  async checksum(
    selections: SourceSelection[],
    exclude: string[] = [],
  ): Promise<{ digest: string; files: Record<string, string> }> {
    const lap = phases('context');
    const files: Record<string, string> = {};
    const excluded = excluder(exclude);
    for (const sel of selections) {
      for (const root of sel.roots) {
        const list = root.type === 'dir' ? [root, ...(await this.subtree(root))] : [root];
        // Files whose hash is remembered cost no I/O: done here, synchronously. The rest (big
        // files, symlinks) read in bounded parallel: enough to overlap reads, far from EMFILE.
        // Small files not yet hashed are read synchronously too, yielding to the event loop now and then.
        const rest: ContextEntry[] = [];
        let slice = Date.now();
        for (const e of list) {
          if (e !== root && excluded(relativeTo(root.rel, e.rel))) continue;
          const known =
            e.type === 'file' ? this.hashes.hashSync(this.root, e.content, e.stats) : e.type === 'dir' ? '' : undefined;
          if (known === undefined) rest.push(e);
          else files[e.rel || '.'] = `${e.type}:${e.stats.mode & 0o7777}:${known}`;
          if (Date.now() - slice > WALK_SLICE_MS) {
            await new Promise((r) => setImmediate(r));
            slice = Date.now();
          }
        }
        for (let i = 0; i < rest.length; i += HASH_BATCH) {
          await Promise.all(
            rest.slice(i, i + HASH_BATCH).map(async (e) => {
              const content =
                e.type === 'file' ? await this.hashes.hash(this.root, e.content, e.stats) : await fsp.readlink(e.abs);
              files[e.rel || '.'] = `${e.type}:${e.stats.mode & 0o7777}:${content}`;
            }),
          );
        }
      }
    }
    const h = createHash('sha256');
    for (const k of Object.keys(files).sort()) h.update(`${k}\0${files[k]}\0`);
    lap('checksum');
    return { digest: `sha256:${h.digest('hex')}`, files };
  }

  /**
   * A top-level source that is a symlink is followed inside the context: the one rule of BuildKit
   * (its context is a root symlinks cannot leave) and of our bind mounts (bind-source.ts), so
   * `link -> /etc/passwd` means `<context>/etc/passwd`. A link whose target is not there is
   * E_CONTEXT_ESCAPE when it pointed out of the context, E_COPY_SOURCE otherwise.
   */
  private async followTopLevel(e: ContextEntry): Promise<ContextEntry> {
    if (e.type !== 'symlink') return e;
    const rel = path.relative(this.root, await resolveInRoot(this.root, e.rel));
    const target = rel ? (await this.walk()).get(rel) : undefined;
    if (target) return { ...target, rel: e.rel };
    const real = await fsp.realpath(e.abs).catch(() => undefined);
    const rootReal = await fsp.realpath(this.root);
    if (!real || (real !== rootReal && !real.startsWith(`${rootReal}/`))) {
      throw new VlabError(
        'E_CONTEXT_ESCAPE',
        `COPY source "${e.rel}" is a symlink that leaves the build context; links are resolved inside the context (as BuildKit does), where "${rel || '/'}" does not exist`,
      );
    }
    throw new VlabError(
      'E_COPY_SOURCE',
      `COPY source "${e.rel}" points to "${rel || '.'}", which is excluded or missing`,
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
