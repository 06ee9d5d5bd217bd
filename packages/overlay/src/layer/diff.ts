/**
 * Turn what changed in a snapshot into an OCI layer tar stream.
 *
 * - 'upper' source (overlay driver): walk the upper dir only — cost follows the change, not the
 *   lower layers. char 0/0 → `.wh.<name>`; opaque dir xattr → `.wh..wh..opq` after the dir entry.
 * - 'compare' source (native driver): compare the snapshot tree with its parent's tree.
 * Entries are emitted depth-first with names sorted, metadata read from lstat, uname/gname empty,
 * mtimes truncated to seconds and clamped to `sourceDateEpoch`: equal trees give equal bytes.
 * Files copied up but unchanged still appear (as Docker does); dirs that are only copied up do not.
 */
import { isLayerXattr } from './xattr-rule.ts';
import { lstatSync as lstatPath, readdirSync as readdirPath, rmdirSync, utimesSync, type Stats } from 'node:fs';
import { hostPath, nameBytes, nameFromBytes, readlinkName } from '../fsname.ts';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { VlabError } from '@vlab/errors';
import { encodeHeader, type TarEntry, type EntryType } from './tar-format.ts';
import { layerMtime, layerTar, tarEntryBytes, whiteoutHeader } from './tar-write.ts';
import { readXattrsTree, type XattrMap } from '../sys.ts';
import type { DiffSourceInfo } from '../types.ts';
import { UnionView, type UnionStat } from '../union-view.ts';
import { fileChunks, sameContent } from '../same-content.ts';

export type DiffSource = DiffSourceInfo;

export interface DiffOptions {
  sourceDateEpoch?: number;
  /**
   * Paths (relative, e.g. `etc/hosts`) left out with everything below them: a running
   * container's mountpoints, which its runtime removes when it ends (docker's init layer).
   */
  exclude?: string[];
  /**
   * 'upper' source only, and only once the snapshot is unmounted for good (a step about to be
   * committed): after the walk, remove from the upper the dirs left out of the layer as unchanged
   * copy-ups (the mountpoints' /etc…), so the committed snapshot holds what its layer holds. Kept,
   * each step's empty /etc would be one more dir for overlay and UnionView to merge under every
   * later step: a lookup in /etc at depth 100 goes through 100 of them.
   */
  pruneCopiedUp?: boolean;
}

const BATCH = 64;
/** Let the event loop run between batches of synchronous metadata calls. */
const breathe = () => new Promise<void>((r) => setImmediate(r));
const OPAQUE = ['trusted.overlay.opaque', 'user.overlay.opaque'];
const UNSUPPORTED = /^(trusted|user)\.overlay\.(redirect|metacopy)$/;
/** xattrs never carried in a layer: overlay's own bookkeeping and host security labels. */

// File names are bytes (fsname.ts): a name that is not UTF-8 is read, found and sorted by its bytes.
const lstatSync = (p: string) => lstatPath(hostPath(p));
const readdirSync = (p: string) => readdirPath(hostPath(p), 'buffer').map((b) => nameFromBytes(b));
const readlinkSync = readlinkName;

function sortNames(names: string[]): string[] {
  return names.sort((a, b) => Buffer.compare(nameBytes(a), nameBytes(b)));
}

function typeOf(st: Stats): EntryType | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return undefined; // sockets are not archived
}

const major = (rdev: number) => ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
const minor = (rdev: number) => (rdev & 0xff) | ((rdev >>> 12) & ~0xff & 0xfffff);
const isWhiteout = (st: Stats) => st.isCharacterDevice() && st.rdev === 0;

class Emitter {
  private links = new Map<string, string>();
  private readonly exclude: Set<string>;
  constructor(
    private xattrs: XattrMap,
    private epoch?: number,
    exclude: string[] = [],
  ) {
    this.exclude = new Set(exclude.map((x) => x.replace(/^\/+|\/+$/g, '')));
  }

  /** `rel` or one of its parents is excluded. */
  excluded(rel: string): boolean {
    if (!this.exclude.size) return false;
    for (let r = rel; r; r = r.includes('/') ? r.slice(0, r.lastIndexOf('/')) : '')
      if (this.exclude.has(r)) return true;
    return false;
  }

  mtime(st: Stats): number {
    return layerMtime(st.mtimeMs / 1000, this.epoch);
  }

  async *entry(abs: string, rel: string, st: Stats): AsyncGenerator<Buffer> {
    const type = typeOf(st);
    if (!type) return;
    const xa = new Map<string, Buffer>();
    for (const [k, v] of this.xattrs.get(abs) ?? []) if (isLayerXattr(k)) xa.set(k, v);
    const h: TarEntry = {
      name: type === 'dir' ? `${rel}/` : rel,
      type,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size: type === 'file' ? st.size : 0,
      mtime: this.mtime(st),
      xattrs: xa,
      linkname: type === 'symlink' ? readlinkSync(abs) : '',
      devmajor: type === 'char' || type === 'block' ? major(st.rdev) : 0,
      devminor: type === 'char' || type === 'block' ? minor(st.rdev) : 0,
    };
    if (type !== 'dir' && st.nlink > 1) {
      const id = `${st.dev}:${st.ino}`;
      const first = this.links.get(id);
      if (first !== undefined) {
        yield encodeHeader({ ...h, type: 'link', linkname: first, size: 0 });
        return;
      }
      this.links.set(id, rel);
    }
    yield* tarEntryBytes(h, abs);
  }
}

const join = (rel: string, name: string) => (rel ? `${rel}/${name}` : name);
const wh = (rel: string, name: string) => join(rel, `.wh.${name}`);

/**
 * The lower dir at `rel` when the union shows one there. Only asked while every ancestor was a
 * non-opaque upper dir over a lower dir, so the lookup never goes through a lower symlink.
 */
async function lowerDir(lower: UnionView, rel: string): Promise<UnionStat | undefined> {
  const st = await lower.stat(rel).catch(() => undefined);
  return st?.isDirectory() ? st : undefined;
}

const ownXattrs = (xa?: Map<string, Buffer>) => [...(xa?.keys() ?? [])].some((k) => isLayerXattr(k));
const isOpaque = (xa?: Map<string, Buffer>) => !!xa && OPAQUE.some((k) => xa.get(k)?.toString() === 'y');

/**
 * Whether upper dir `rel` is only a copy-up: overlay copies a dir up when something is created
 * in it, even if it is removed again (the mountpoints of /etc/hosts…). Unchanged = the lower's
 * mode, owner and mtime (to the second, what a tar keeps), no xattrs of its own to compare, and
 * nothing inside but dirs that are unchanged too. Such a dir is left out of the layer, so a RUN
 * that changes nothing gives an empty layer, as BuildKit's.
 */
async function unchangedCopyUp(
  lower: UnionView,
  xattrs: XattrMap,
  abs: string,
  rel: string,
  st: Stats,
  below: UnionStat,
): Promise<boolean> {
  const xa = xattrs.get(abs);
  if (isOpaque(xa) || ownXattrs(xa)) return false;
  if (st.mode !== below.mode || st.uid !== below.uid || st.gid !== below.gid) return false;
  if (Math.floor(st.mtimeMs / 1000) !== Math.floor(below.mtimeMs / 1000)) return false;
  for (const name of readdirSync(abs)) {
    const cabs = path.join(abs, name);
    const cst = lstatSync(cabs);
    if (!cst.isDirectory()) return false;
    const cbelow = await lowerDir(lower, join(rel, name));
    if (!cbelow || !(await unchangedCopyUp(lower, xattrs, cabs, join(rel, name), cst, cbelow))) return false;
  }
  return true;
}

async function* walkUpper(
  e: Emitter,
  xattrs: XattrMap,
  root: string,
  rel: string,
  lower?: UnionView,
  copiedUp?: string[],
): AsyncGenerator<Buffer> {
  const dir = rel ? path.join(root, rel) : root;
  let i = 0;
  for (const name of sortNames(readdirSync(dir))) {
    if (++i % BATCH === 0) await breathe();
    const abs = path.join(dir, name);
    const r = join(rel, name);
    if (e.excluded(r)) continue;
    const st = lstatSync(abs);
    const xa = xattrs.get(abs);
    if (xa)
      for (const k of xa.keys()) {
        if (UNSUPPORTED.test(k))
          throw new VlabError(
            'E_DIFF_UNSUPPORTED',
            `${r} carries ${k}: overlay redirect_dir/metacopy uppers cannot be diffed from the upper alone`,
          );
      }
    if (isWhiteout(st)) {
      yield whiteoutHeader(wh(rel, name));
      continue;
    }
    // Below an opaque dir, or one the lowers lack, nothing of the lowers shows: stop asking them.
    const below = lower && st.isDirectory() && !isOpaque(xa) ? await lowerDir(lower, r) : undefined;
    if (below && (await unchangedCopyUp(lower!, xattrs, abs, r, st, below))) {
      copiedUp?.push(abs);
      continue;
    }
    yield* e.entry(abs, r, st);
    if (st.isDirectory()) {
      if (isOpaque(xa)) yield whiteoutHeader(join(r, '.wh..wh..opq'));
      yield* walkUpper(e, xattrs, root, r, below ? lower : undefined, copiedUp);
    }
  }
}

/**
 * Removes the unchanged copy-ups `dirs` (host paths; each holds only dirs, unchangedCopyUp checked)
 * from an unmounted upper, deepest first, and puts back the times of the dirs they were in (to
 * about a µs: utimes takes a double, as apply.ts's dates). Best effort: a dir left behind is only
 * the extra merge that pruning saves, never a difference from the layer.
 */
function pruneCopiedUp(dirs: string[]): void {
  const parents = new Map<string, Stats>();
  for (const d of dirs) {
    const parent = path.dirname(d);
    if (!parents.has(parent)) parents.set(parent, lstatSync(parent));
  }
  const remove = (d: string) => {
    for (const name of readdirSync(d)) remove(path.join(d, name));
    rmdirSync(hostPath(d));
  };
  for (const d of dirs) {
    try {
      remove(d);
    } catch {
      /* kept: see above */
    }
  }
  for (const [parent, st] of parents) utimesSync(hostPath(parent), st.atimeMs / 1000, st.mtimeMs / 1000);
}

function lstatOrUndef(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function sameXattrs(a?: Map<string, Buffer>, b?: Map<string, Buffer>): boolean {
  const fa = [...(a ?? [])].filter(([k]) => isLayerXattr(k));
  const fb = [...(b ?? [])].filter(([k]) => isLayerXattr(k));
  return fa.length === fb.length && fa.every(([k, v]) => b?.get(k)?.equals(v));
}

type Change = { rel: string; kind: 'entry' | 'whiteout' | 'tree'; st: Stats };

/**
 * What compare learns about hard links: the unchanged names of each hard-linked inode (with its
 * link count), and names it must take as changed.
 */
interface Links {
  kept: Map<string, { rels: string[]; nlink: number }>;
  force?: Set<string>;
  /** the copy marker's ctime (ms), DiffSourceInfo's `copiedAt` */
  copiedAt?: number;
}

/**
 * Unchanged names that must be in the layer: a layer that carries one name of a hard-linked
 * inode carries all of them, or apply makes a copy where the tree had a link (containerd's
 * changeWriter writes the unmodified names of a hard link it writes, as links). Every name is
 * either unchanged, changed, or under a new dir, so fewer unchanged names than links means some
 * name of the inode is in the layer.
 */
function linkedNames(links: Links): Set<string> {
  const out = new Set<string>();
  for (const { rels, nlink } of links.kept.values()) if (rels.length < nlink) for (const r of rels) out.add(r);
  return out;
}

/** Changes of `dir` against `base`, depth-first in sorted order, parents of changes included. */
async function compare(
  dir: string,
  base: string | undefined,
  xd: XattrMap,
  xb: XattrMap,
  rel: string,
  links: Links,
): Promise<Change[]> {
  const out: Change[] = [];
  const d = rel ? path.join(dir, rel) : dir;
  const b = base === undefined ? undefined : rel ? path.join(base, rel) : base;
  const names = new Set(readdirSync(d));
  let bnames: string[] = [];
  try {
    if (b) bnames = readdirSync(b);
  } catch {
    /* not a dir in base */
  }
  for (const n of bnames) names.add(n);
  for (const name of sortNames([...names])) {
    const r = join(rel, name);
    if (out.length % BATCH === BATCH - 1) await breathe();
    const sa = lstatOrUndef(path.join(d, name));
    const sb = b ? lstatOrUndef(path.join(b, name)) : undefined;
    if (!sa) {
      out.push({ rel: join(rel, `.wh.${name}`), kind: 'whiteout', st: sb! });
      continue;
    }
    if (!sb || typeOf(sa) !== typeOf(sb)) {
      out.push({ rel: r, kind: 'tree', st: sa });
      continue;
    }
    const pa = path.join(d, name);
    const pb = path.join(b!, name);
    const changed =
      sa.mode !== sb.mode ||
      sa.uid !== sb.uid ||
      sa.gid !== sb.gid ||
      sa.rdev !== sb.rdev ||
      (!sa.isDirectory() && !sa.isFile() && (sa.size !== sb.size || sa.mtimeMs !== sb.mtimeMs)) ||
      (sa.isDirectory() && Math.floor(sa.mtimeMs / 1000) !== Math.floor(sb.mtimeMs / 1000)) ||
      (sa.isSymbolicLink() && readlinkSync(pa) !== readlinkSync(pb)) ||
      !sameXattrs(xd.get(pa), xb.get(pb)) ||
      !!links.force?.has(r) ||
      // last: it may read both files
      (sa.isFile() && !(await sameContent(sa, sb, () => [fileChunks(pa), fileChunks(pb)], links.copiedAt)));
    if (!changed && !sa.isDirectory() && sa.nlink > 1) {
      const id = `${sa.dev}:${sa.ino}`;
      const k = links.kept.get(id);
      if (k) k.rels.push(r);
      else links.kept.set(id, { rels: [r], nlink: sa.nlink });
    }
    const sub = sa.isDirectory() ? await compare(dir, base, xd, xb, r, links) : [];
    if (changed || sub.length) out.push({ rel: r, kind: 'entry', st: sa }, ...sub);
  }
  return out;
}

async function* walkAll(e: Emitter, root: string, rel: string): AsyncGenerator<Buffer> {
  const dir = path.join(root, rel);
  let i = 0;
  for (const name of sortNames(readdirSync(dir))) {
    if (++i % BATCH === 0) await breathe();
    const st = lstatSync(path.join(dir, name));
    yield* e.entry(path.join(dir, name), join(rel, name), st);
    if (st.isDirectory()) yield* walkAll(e, root, join(rel, name));
  }
}

async function* generate(src: DiffSource, opts: DiffOptions): AsyncGenerator<Buffer> {
  if (src.kind === 'upper') {
    const xattrs = await readXattrsTree(src.upper);
    // the lowers are committed snapshots: immutable
    const lower = src.lowers?.length
      ? new UnionView([...src.lowers].reverse(), { immutable: true, identity: src.lowersKey })
      : undefined;
    const copiedUp: string[] | undefined = opts.pruneCopiedUp ? [] : undefined;
    yield* walkUpper(new Emitter(xattrs, opts.sourceDateEpoch, opts.exclude), xattrs, src.upper, '', lower, copiedUp);
    if (copiedUp) pruneCopiedUp(copiedUp);
  } else {
    const xd = await readXattrsTree(src.dir);
    const xb = src.base ? await readXattrsTree(src.base) : new Map();
    const e = new Emitter(xd, opts.sourceDateEpoch, opts.exclude);
    const copiedAt = src.base === undefined ? undefined : src.copiedAt;
    const links: Links = { kept: new Map(), copiedAt };
    let changes = await compare(src.dir, src.base, xd, xb, '', links);
    const force = linkedNames(links);
    // rare (a new name for an old inode): compare again with those names taken as changed
    if (force.size) changes = await compare(src.dir, src.base, xd, xb, '', { kept: new Map(), force, copiedAt });
    for (const c of changes) {
      if (e.excluded(c.kind === 'whiteout' ? c.rel.replace(/(^|\/)\.wh\.([^/]*)$/, '$1$2') : c.rel)) continue;
      if (c.kind === 'whiteout') {
        yield whiteoutHeader(c.rel);
        continue;
      }
      yield* e.entry(path.join(src.dir, c.rel), c.rel, c.st);
      if (c.kind === 'tree' && c.st.isDirectory()) yield* walkAll(e, src.dir, c.rel);
    }
  }
}

/** Layer tar of `src` as a stream (back-pressure respected; files are streamed, never buffered whole). */
export function diffSource(src: DiffSource, opts: DiffOptions = {}): Readable {
  return layerTar(generate(src, opts));
}
