/**
 * The one COPY/ADD plan: every entry its layer holds, with the metadata it ends with (Docker's
 * destination rule, --chown/--chmod, parent dirs, hard links, excludes, --parents applied), in
 * layer order. Made once from the image below (read without mounting) and fed to either output:
 * packed straight into a layer tar (pack.ts) or written into a mounted tree (write.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { pathComponentProblem, type CopyInstruction } from '@vlab/dockerfile';
import type { UnionStat, UnionView } from '@vlab/overlay';
import { resolveIn, type TreeLinks } from '../../fsutil/in-root.ts';
import { destRule, type CopyItem, type Owner } from '../ops/copy.ts';
import type { ArchiveKind } from '../ops/add.ts';
import type { Gathered } from './sources.ts';
import type { StatLike } from '../../context/walk.ts';

export interface PlanEntry {
  /** Path in the image, without a leading '/'. */
  path: string;
  type: 'dir' | 'file' | 'symlink' | 'link';
  mode: number;
  uid: number;
  gid: number;
  /** Whole seconds, as the tree has it (a layer clamps it to SOURCE_DATE_EPOCH). */
  mtime: number;
  size: number;
  /** Host file holding a file's bytes. */
  source?: string;
  /** A symlink's target; for a hard link, the path of the entry it links to (earlier in the plan). */
  linkname: string;
  /** A directory replacing a non-directory of the image: overlay marks it opaque, the layer says so. */
  opaque: boolean;
  /** A directory the image has with this very metadata and nothing new below: no layer entry. */
  unchanged: boolean;
}

export interface CopyPlan {
  /** In layer order: depth first, names sorted by bytes (the order the snapshot diff writes). */
  entries: PlanEntry[];
  /** ADD of local archives, unpacked into these image dirs: only the mounted output does them. */
  extracts: { archive: string; format: Exclude<ArchiveKind, undefined>; dest: string }[];
}

interface Draft extends PlanEntry {
  /** From a source (else a parent dir the COPY needs: kept as the image has it, or created). */
  item: boolean;
  inode?: string;
}

const ROOT: Owner = { uid: 0, gid: 0 };
const seconds = (st: { mtimeMs: number }) => Math.floor(st.mtimeMs / 1000);
const parentOf = (p: string) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');

/**
 * Layer order without a key buffer per entry: the bytes of UTF-8 `p` with '/' as the lowest byte
 * (depth first, names by bytes). UTF-16 code units sort as UTF-8 bytes except a surrogate (a
 * character above U+FFFF) against U+E000–U+FFFF, where the surrogate is the larger.
 */
export function layerOrder(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x === 47) return -1;
    if (y === 47) return 1;
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    return sx === sy ? x - y : sx ? 1 : -1;
  }
  return a.length - b.length;
}

function specialKind(st: StatLike): string {
  if (st.isFIFO()) return 'a fifo';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'a special file';
}

/**
 * One source item as the entry it becomes at `target` ('/'-rooted): --chmod over its mode,
 * --chown (else its own owner with `keepOwners`, else 0:0), its mtime. Fifos, sockets and devices
 * are refused (opening a FIFO blocks; a device reads endless or empty): E_COPY_SOURCE.
 */
export function entryOfItem(
  item: CopyItem,
  target: string,
  o: { owner?: Owner; chmod?: number; keepOwners?: boolean } = {},
): Draft {
  const st = item.stats;
  const owner = o.owner ?? (o.keepOwners ? st : ROOT);
  // One object per entry, all of one shape (a COPY of 200,000 files makes 200,000 of them).
  const d: Draft = {
    path: target.slice(1),
    type: 'file',
    mode: o.chmod ?? st.mode & 0o7777,
    uid: owner.uid,
    gid: owner.gid,
    mtime: seconds(st),
    size: 0,
    source: undefined,
    linkname: '',
    opaque: false,
    unchanged: false,
    item: true,
    inode: undefined,
  };
  if (st.isDirectory()) d.type = 'dir';
  else if (st.isSymbolicLink()) {
    d.type = 'symlink';
    d.mode = 0o777;
    d.linkname = fs.readlinkSync(item.src);
  } else if (st.isFile()) {
    d.size = st.size;
    d.source = item.src;
    if (st.nlink > 1) d.inode = `${st.dev}:${st.ino}`;
  } else
    throw new VlabError(
      'E_COPY_SOURCE',
      `${specialKind(st)} ${item.rel || path.posix.basename(target)}: COPY of fifos, sockets and device nodes is not supported`,
    );
  return d;
}

/**
 * The plan of `inst` over the image `view`, for the sources gathered. `now` (whole seconds) is
 * the mtime of every directory the COPY creates or changes the entries of (as the kernel would
 * give them), so both outputs write the same one.
 */
export async function makePlan(
  inst: CopyInstruction,
  o: { workdir: string; view: UnionView; now: number; owner?: Owner; chmod?: number; sources: Gathered },
): Promise<CopyPlan> {
  const b = new PlanBuilder(o.view, o.now, o.owner);
  const tree: TreeLinks = { lstat: (p) => b.image(p), readlink: (p) => o.view.readlink(p) };
  const rawDest = path.posix.resolve(o.workdir || '/', inst.dest);
  const slash = inst.dest.endsWith('/');
  // Symlinks on the way to the destination are followed in the image, as a container would.
  const dirTarget = await resolveIn(tree, rawDest);
  const existing = slash ? undefined : await b.image(dirTarget);
  const destIsDir = destRule(
    inst,
    slash ? `${rawDest}/` : rawDest,
    existing?.isDirectory() === true,
    o.sources.count,
    o.sources.wildcard,
  );
  const fileDest = destIsDir
    ? undefined
    : path.posix.join(await resolveIn(tree, path.posix.dirname(rawDest)), path.posix.basename(rawDest));
  const extracts: CopyPlan['extracts'] = [];
  const opts = { owner: o.owner, chmod: o.chmod };
  for (const root of o.sources.roots) {
    if (root.kind === 'archive') {
      await b.ensureDir(dirTarget, true);
      extracts.push({ archive: root.archive, format: root.format, dest: dirTarget });
    } else if (root.kind === 'dir') {
      // A directory's contents always go into dest, which becomes a directory.
      await b.ensureDir(dirTarget);
      for (const item of root.items)
        b.put(entryOfItem(item, path.posix.join(dirTarget, item.rel), { ...opts, keepOwners: root.keepOwners }));
    } else {
      let target = fileDest;
      if (root.parents) {
        const dir = await resolveIn(tree, path.posix.join(rawDest, path.posix.dirname(root.name)));
        target = path.posix.join(dir, path.posix.basename(root.name));
      } else if (destIsDir) {
        const problem = root.url ? pathComponentProblem(root.name) : undefined;
        // As BuildKit, which fails to create such a file: the name comes from the URL, the user can give one.
        if (problem)
          throw new VlabError(
            'E_ADD_NAME',
            `ADD ${root.url}: the file name the URL gives cannot be a file name (${problem}); name the destination file, e.g. ADD <url> /dir/file`,
          );
        target = path.posix.join(dirTarget, root.name);
      }
      await b.ensureDir(path.posix.dirname(target!));
      b.put(entryOfItem(root.item, target!, { ...opts, keepOwners: root.keepOwners }));
    }
  }
  return { entries: await b.finish(), extracts };
}

class PlanBuilder {
  private drafts = new Map<string, Draft>();
  private images = new Map<string, Promise<UnionStat | undefined>>();
  /** Dirs whose entries change without a planned child saying so (an archive unpacked into them). */
  private touched = new Set<string>();

  constructor(
    private readonly view: UnionView,
    private readonly now: number,
    private readonly owner?: Owner,
  ) {}

  /** lstat of '/'-rooted `p` in the image below (no symlink followed on the way: callers pass resolved paths). */
  image(p: string): Promise<UnionStat | undefined> {
    let got = this.images.get(p);
    if (!got) {
      got = this.view.stat(p).catch(() => undefined);
      this.images.set(p, got);
    }
    return got;
  }

  /** mkdir -p of resolved `dir`: dirs the image has stay as they are, others are made 0755, owned by --chown. */
  async ensureDir(dir: string, touched = false): Promise<void> {
    const parts = dir.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      const planned = this.drafts.get(p);
      if (planned && planned.type !== 'dir')
        throw new VlabError('E_NOT_A_DIRECTORY', `/${p} is copied as a file and cannot hold /${parts.join('/')}`);
      if (planned) continue;
      const st = await this.image(`/${p}`);
      if (st && !st.isDirectory())
        throw new VlabError('E_NOT_A_DIRECTORY', `/${p} exists in the image and is not a directory`);
      const meta = st
        ? { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: seconds(st) }
        : { mode: 0o755, ...(this.owner ?? ROOT), mtime: this.now };
      this.drafts.set(p, {
        path: p,
        type: 'dir',
        ...meta,
        size: 0,
        linkname: '',
        opaque: false,
        unchanged: false,
        item: false,
      });
    }
    if (touched) this.touched.add(parts.join('/'));
  }

  /** A later source at the same path wins, as a later write would; a non-dir drops what a dir there held. */
  put(d: Draft): void {
    if (!d.path) return; // the root itself: only its contents are copied
    if (this.drafts.get(d.path)?.type === 'dir' && d.type !== 'dir')
      for (const k of this.drafts.keys()) if (k.startsWith(`${d.path}/`)) this.drafts.delete(k);
    this.drafts.set(d.path, d);
  }

  async finish(): Promise<PlanEntry[]> {
    const sorted = [...this.drafts.values()].sort((a, b) => layerOrder(a.path, b.path));
    // What the image has under each planned dir (only asked where the image has its parent dir).
    const below = new Map<string, UnionStat | undefined>();
    const imageOf = async (d: Draft) => {
      const parent = parentOf(d.path);
      const inImage = !parent || below.get(parent)?.isDirectory();
      const st = inImage ? await this.image(`/${d.path}`) : undefined;
      if (d.type === 'dir') below.set(d.path, st);
      return st;
    };
    const images = new Map<Draft, UnionStat | undefined>();
    for (const d of sorted) if (d.type === 'dir') images.set(d, await imageOf(d));
    // A dir gets `now` when an entry is made or replaced in it (a dir the image has is kept, not made).
    const changed = new Set(this.touched);
    for (const d of sorted) if (d.type !== 'dir' || !images.get(d)?.isDirectory()) changed.add(parentOf(d.path));
    for (const d of sorted) {
      const st = images.get(d);
      if (d.type !== 'dir' || !st) continue;
      if (!st.isDirectory()) d.opaque = true;
      else if (!d.item && changed.has(d.path)) d.mtime = this.now;
    }
    // Unchanged: the image's own dir, same metadata, nothing changed below (children come first here).
    const dirty = new Set<string>();
    for (const d of [...sorted].reverse()) {
      const st = images.get(d);
      d.unchanged =
        d.type === 'dir' &&
        !!st?.isDirectory() &&
        !dirty.has(d.path) &&
        (st.mode & 0o7777) === d.mode &&
        st.uid === d.uid &&
        st.gid === d.gid &&
        seconds(st) === d.mtime &&
        !this.touched.has(d.path);
      if (!d.unchanged) dirty.add(parentOf(d.path));
    }
    // Files of this COPY that are hard links to each other stay linked (BuildKit keeps them):
    // the first in layer order holds the bytes, the others link to it.
    const first = new Map<string, string>();
    for (const e of sorted) {
      if (e.inode === undefined) continue;
      const target = first.get(e.inode);
      if (target === undefined) first.set(e.inode, e.path);
      else Object.assign(e, { type: 'link', linkname: target, size: 0, source: undefined });
    }
    return sorted;
  }
}
