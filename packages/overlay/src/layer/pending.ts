/**
 * What layer apply defers to the end of a layer, in a tree of the layer's (resolved) paths:
 * directory metadata (children would change a directory's mtime), device nodes, fifos and overlay
 * whiteouts (Node cannot mknod: one GNU `tar -x` makes them all), hard links to those, and xattrs
 * (one `setfattr`). A later entry that replaces or removes a path drops the whole subtree of
 * records with it, so nothing recorded under `p/` can land where `p` points once `p` is a symlink.
 *
 * At the end every record is re-checked in the root with no symlink component (InRootDirs), and
 * directory metadata goes through an fd of the directory itself. Nodes, links and xattrs are made
 * by vlab-sys under parents it opens with O_NOFOLLOW from the root; without it, by GNU tar and
 * setfattr by the paths just checked (apply is the only writer of the tree while it runs, and they
 * make no directory or symlink that could change what a checked path names).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { VlabError } from '@vlab/errors';
import { bareEntry, encodeHeader, END_OF_ARCHIVE, type TarEntry } from './tar-format.ts';
import { InRootDirs } from '../in-root.ts';
import { makeNodesInRoot, run, writeXattrs, type NodeItem } from '../sys.ts';

interface Rec {
  name: string;
  parent?: Rec;
  kids?: Map<string, Rec>;
  dropped?: boolean;
  dir?: TarEntry; // directory metadata
  node?: TarEntry; // char, block, fifo or whiteout to make
  linkTo?: Rec; // hard link to a deferred node
  xattrs?: Map<string, Buffer>;
}

function partsOf(r: Rec): string[] {
  const out: string[] = [];
  for (let n: Rec | undefined = r; n?.parent; n = n.parent) out.push(n.name);
  return out.reverse();
}

function attached(r: Rec): boolean {
  for (let n: Rec | undefined = r; n; n = n.parent) if (n.dropped) return false;
  return true;
}

export class Pending {
  private readonly top: Rec = { name: '' };

  private at(parts: readonly string[], create: true): Rec;
  private at(parts: readonly string[], create: false): Rec | undefined;
  private at(parts: readonly string[], create: boolean): Rec | undefined {
    let cur = this.top;
    for (const p of parts) {
      let next = cur.kids?.get(p);
      if (!next) {
        if (!create) return undefined;
        next = { name: p, parent: cur };
        (cur.kids ??= new Map()).set(p, next);
      }
      cur = next;
    }
    return cur;
  }

  /** Forget everything recorded at `parts` and below: that path was replaced or removed. */
  drop(parts: readonly string[]): void {
    const r = this.at(parts, false);
    if (!r || !r.parent) return;
    r.dropped = true;
    r.parent.kids!.delete(r.name);
  }

  /** A directory now stands at `parts`: a node recorded there is gone (a node has no records below it). */
  becomesDir(parts: readonly string[]): void {
    const r = this.at(parts, false);
    if (r && (r.node || r.linkTo)) this.drop(parts);
  }

  /** Whether a node or a hard link to one is recorded at `parts` (it is not on disk yet). */
  isNode(parts: readonly string[]): boolean {
    const r = this.at(parts, false);
    return !!(r && (r.node || r.linkTo));
  }

  dir(parts: readonly string[], h: TarEntry): void {
    this.at(parts, true).dir = h;
  }

  node(parts: readonly string[], h: TarEntry): void {
    this.drop(parts);
    this.at(parts, true).node = h;
  }

  /** Hard link `parts` to the node recorded at `target` (which isNode). */
  link(parts: readonly string[], target: readonly string[]): void {
    const t = this.at(target, false)!;
    const to = t.linkTo ?? t;
    this.drop(parts);
    this.at(parts, true).linkTo = to;
  }

  xattr(parts: readonly string[], name: string, value: Buffer): void {
    (this.at(parts, true).xattrs ??= new Map()).set(name, value);
  }

  /**
   * Do the deferred work under `root`: nodes and hard links, then xattrs, then directory
   * metadata (deepest first, through each directory's own fd). `owners`: chown (real root).
   */
  async finish(root: string, owners: boolean): Promise<void> {
    const nodes: Rec[] = [];
    const links: Rec[] = [];
    const xattrs: Rec[] = [];
    const dirs: Rec[] = [];
    const walk = (r: Rec) => {
      if (r.node) nodes.push(r);
      if (r.linkTo) links.push(r);
      if (r.xattrs) xattrs.push(r);
      if (r.dir) dirs.push(r);
      if (r.kids) for (const k of r.kids.values()) walk(k);
    };
    walk(this.top);
    const inRoot = new InRootDirs(root);
    try {
      const check = (parts: string[]) => {
        inRoot.dir(parts.slice(0, -1));
        return parts.join('/');
      };
      const items: NodeItem[] = [];
      for (const r of nodes) items.push(nodeItem(r.node!, check(partsOf(r))));
      // a link whose node was replaced later keeps the node: the first such link becomes a copy of it
      const copies = new Map<Rec, string>();
      for (const r of links) {
        const name = check(partsOf(r));
        const to = r.linkTo!;
        const target = attached(to) ? check(partsOf(to)) : copies.get(to);
        if (target !== undefined) items.push({ kind: 'link', path: name, target });
        else {
          copies.set(to, name);
          items.push(nodeItem(to.node!, name));
        }
      }
      for (const r of xattrs) {
        const p = check(partsOf(r));
        for (const [name, value] of r.xattrs!) items.push({ kind: 'xattr', path: p, name, value });
      }
      if (items.length && !(await makeNodesInRoot(root, owners, items))) await withTools(root, owners, items);
      const ordered = dirs
        .map((r) => ({ parts: partsOf(r), h: r.dir! }))
        .map((d) => ({ ...d, rel: d.parts.join('/') }));
      ordered.sort((a, b) => (a.rel < b.rel ? 1 : a.rel > b.rel ? -1 : 0)); // children before parents
      for (const { parts, h } of ordered) {
        const fd = inRoot.dir(parts);
        if (owners) fs.fchownSync(fd, h.uid, h.gid);
        fs.fchmodSync(fd, h.mode & 0o7777); // after chown, which clears setuid
        fs.futimesSync(fd, h.mtime, h.mtime);
      }
    } finally {
      inRoot.close();
    }
  }
}

function nodeItem(h: TarEntry, path: string): NodeItem {
  const type = h.type === 'char' || h.type === 'block' ? h.type : 'fifo';
  return {
    kind: 'node',
    path,
    type,
    mode: h.mode,
    devmajor: h.devmajor,
    devminor: h.devminor,
    uid: h.uid,
    gid: h.gid,
    mtime: h.mtime,
  };
}

/**
 * Without vlab-sys: one GNU `tar -x` makes the nodes and links, one `setfattr` sets the xattrs,
 * by the paths checked above (tar makes no directory or symlink on the way: they already exist).
 */
async function withTools(root: string, owners: boolean, items: NodeItem[]): Promise<void> {
  const blocks: Buffer[] = [];
  const base = bareEntry('', 'file');
  for (const it of items) {
    if (it.kind === 'node') blocks.push(encodeHeader({ ...base, ...it, name: it.path }));
    else if (it.kind === 'link')
      blocks.push(encodeHeader({ ...base, type: 'link', name: it.path, linkname: it.target }));
  }
  if (blocks.length) {
    const r = await run(
      'tar',
      ['-x', '-f', '-', '-C', root, '--numeric-owner', '--no-overwrite-dir', ...(owners ? ['-p', '--same-owner'] : [])],
      {
        input: Buffer.concat([...blocks, END_OF_ARCHIVE]),
      },
    );
    if (r.code !== 0)
      throw new VlabError('E_LAYER_APPLY', `creating device nodes/whiteouts failed: ${r.stderr.trim()}`);
  }
  await writeXattrs(
    items.flatMap((it) =>
      it.kind === 'xattr' ? [{ path: path.join(root, it.path), name: it.name, value: it.value }] : [],
    ),
  );
}
