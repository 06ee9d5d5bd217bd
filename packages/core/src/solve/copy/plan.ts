/**
 * The one COPY/ADD plan: every entry its layer holds, with the metadata it ends with (Docker's
 * destination rule, --chown/--chmod, parent dirs, hard links, excludes, --parents applied), in
 * layer order. Made once from the image below (read without mounting) and fed to either output:
 * packed straight into a layer tar (pack.ts) or written into a mounted tree (write.ts).
 */
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { pathComponentProblem, type CopyInstruction } from '@vlab/dockerfile';
import type { FileIdentity, UnionStat, UnionView } from '@vlab/overlay';
import { resolveIn, type TreeLinks } from '../../fsutil/in-root.ts';
import { destRule, type Owner } from '../ops/copy.ts';
import type { ArchiveKind } from '../ops/add.ts';
import type { Gathered } from './sources.ts';
import { entryOfItem, layerOrder, parentOf, ROOT, seconds, type Draft, type PlanEntry } from './entry.ts';
import { PlanFiles, type TreeSource } from './plan-files.ts';

export { entryOfItem, layerOrder, type PlanEntry } from './entry.ts';

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

export interface CopyPlan {
  /**
   * In layer order: depth first, names sorted by bytes (the order the snapshot diff writes). Read
   * once per output: some entries are made as they are read (plan-files.ts).
   */
  entries: Iterable<PlanEntry>;
  /** ADD of local archives, unpacked into these image dirs: only the mounted output does them. */
  extracts: { archive: string; srcStat: FileIdentity; format: Exclude<ArchiveKind, undefined>; dest: string }[];
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
      extracts.push({ archive: root.archive, srcStat: root.srcStat, format: root.format, dest: dirTarget });
    } else if (root.kind === 'dir') {
      // A directory's contents always go into dest, which becomes a directory.
      await b.ensureDir(dirTarget);
      for (const item of root.items)
        b.put(entryOfItem(item, path.posix.join(dirTarget, item.rel), { ...opts, keepOwners: root.keepOwners }));
    } else if (root.kind === 'tree') {
      await b.ensureDir(dirTarget);
      for (const item of root.head) b.put(entryOfItem(item, path.posix.join(dirTarget, item.rel), opts));
      // The only source: no later one can replace its files, so they need no entry of their own yet.
      const files =
        o.sources.roots.length === 1 ? b.filesInto(root.tree, dirTarget, opts, root.index.length) : undefined;
      const { context, table, cut } = root.tree;
      for (const i of root.index) {
        if (files && (table.mode(i) & S_IFMT) === S_IFREG) files.add(i);
        else {
          const e = context.entry(table, i);
          const item = { src: e.abs, root: context.root, rel: e.rel.slice(cut), stats: e.stats };
          b.put(entryOfItem(item, path.posix.join(dirTarget, item.rel), opts));
        }
      }
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
  /** The regular files of a lone context directory source, not in `drafts`. */
  private files?: PlanFiles;

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

  /** Where a lone context directory's regular files go (by table index): the plan makes their entries when read. */
  filesInto(src: TreeSource, target: string, opts: { owner?: Owner; chmod?: number }, capacity: number): PlanFiles {
    this.files = new PlanFiles(src, target, opts, capacity);
    return this.files;
  }

  /** A later source at the same path wins, as a later write would; a non-dir drops what a dir there held. */
  put(d: Draft): void {
    if (!d.path) return; // the root itself: only its contents are copied
    if (this.drafts.get(d.path)?.type === 'dir' && d.type !== 'dir')
      for (const k of this.drafts.keys()) if (k.startsWith(`${d.path}/`)) this.drafts.delete(k);
    this.drafts.set(d.path, d);
  }

  async finish(): Promise<Iterable<PlanEntry>> {
    const sorted = [...this.drafts.values()].sort((a, b) => layerOrder(a.path, b.path));
    const files = this.files;
    const fileCount = files?.length ?? 0;
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
    for (let k = 0; k < fileCount; k++) changed.add(files!.parent(k));
    for (const d of sorted) {
      const st = images.get(d);
      if (d.type !== 'dir' || !st) continue;
      if (!st.isDirectory()) d.opaque = true;
      else if (!d.item && changed.has(d.path)) d.mtime = this.now;
    }
    // Unchanged: the image's own dir, same metadata, nothing changed below (children come first here).
    const dirty = new Set<string>();
    for (let k = 0; k < fileCount; k++) dirty.add(files!.parent(k)); // a file is never unchanged
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
    const order = merged(sorted, files);
    const first = new Map<string, string>();
    for (const at of order) {
      const e = at < 0 ? sorted[-at - 1]! : undefined;
      const inode = e ? e.inode : files!.inode(at);
      if (inode === undefined) continue;
      const target = first.get(inode);
      if (target === undefined) first.set(inode, e ? e.path : files!.path(at));
      else if (e) Object.assign(e, { type: 'link', linkname: target, size: 0, source: undefined });
      else files!.links.set(at, target);
    }
    if (!files) return sorted;
    return {
      *[Symbol.iterator]() {
        for (const at of order) yield at < 0 ? sorted[-at - 1]! : files.entry(at);
      },
    };
  }
}

/**
 * Layer order of the drafts (sorted) and the files (sorted among themselves): a file as its
 * position k ≥ 0, draft j as -(j + 1).
 */
function merged(sorted: Draft[], files: PlanFiles | undefined): Int32Array {
  const n = files?.length ?? 0;
  const out = new Int32Array(sorted.length + n);
  let j = 0;
  let k = 0;
  for (let o = 0; o < out.length; o++) {
    const takeDraft = j < sorted.length && (k >= n || layerOrder(sorted[j]!.path, files!.path(k)) < 0);
    out[o] = takeDraft ? -++j : k++;
  }
  return out;
}
