/**
 * What a COPY/ADD copies, gathered once for its plan: each source as a file to place, a
 * directory whose contents go into the destination, or (ADD) a local archive to unpack.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { DirsInRoot, hostPath, nameFromBytes, type FileIdentity } from '@vlab/overlay';
import type { CopyInstruction } from '@vlab/dockerfile';
import type { BuildSession } from '../context.ts';
import { excluder, relativeTo } from '../../context/context.ts';
import { compileGlob } from '../../context/patterns.ts';
import { resolveInRoot } from '../../fsutil/in-root.ts';
import { walkHostTree, type CopyItem } from '../ops/copy.ts';
import { archiveKind, type ArchiveKind } from '../ops/add.ts';
import { fetchOnce, selectAll, urlSources } from './key.ts';
import type { TreeSource } from './plan-files.ts';

export type CopyRoot =
  /** A file or symlink placed at `name` in the destination (or at the destination itself). */
  | { kind: 'file'; item: CopyItem; name: string; keepOwners?: boolean; parents?: boolean; url?: string }
  /** Items (`rel` under the destination) of a directory copied into the destination. */
  | { kind: 'dir'; items: CopyItem[]; keepOwners?: boolean }
  /** A context directory copied into the destination: `head` items (--parents), then walk table entries `index`. */
  | { kind: 'tree'; head: CopyItem[]; tree: TreeSource; index: Uint32Array }
  /** ADD of a local tar archive: unpacked into the destination directory. */
  | { kind: 'archive'; archive: string; srcStat: FileIdentity; format: Exclude<ArchiveKind, undefined> };

export interface Gathered {
  roots: CopyRoot[];
  /** What Docker's destination rule counts: sources matched, and whether any was a wildcard. */
  count: number;
  wildcard: boolean;
}

const isGlob = (p: string) => /[*?[]/.test(p);

/** Heredoc bodies (already written to files by heredocFiles). */
export function heredocRoots(items: CopyItem[]): Gathered {
  return { roots: items.map((item) => ({ kind: 'file', item, name: item.rel })), count: items.length, wildcard: false };
}

/** COPY --from: the sources matched inside the other stage's mounted root `stageRoot`; owners kept. */
export async function fromStageRoots(inst: CopyInstruction, stageRoot: string): Promise<Gathered> {
  const excluded = excluder(inst.exclude);
  const roots: CopyRoot[] = [];
  let count = 0;
  for (const p of inst.sources) {
    for (const r of await matchInRoot(stageRoot, p, inst)) {
      count++;
      const items = await walkHostTree(r.host, excluded);
      const top = items[0]!;
      roots.push(
        top.stats.isDirectory()
          ? { kind: 'dir', items: items.slice(1), keepOwners: true }
          : { kind: 'file', item: { ...top, rel: r.name }, name: r.name, keepOwners: true },
      );
    }
  }
  return { roots, count, wildcard: inst.sources.some(isGlob) };
}

/** Context sources (.dockerignore applied by the context, --exclude here) and ADD's URLs. */
export async function contextRoots(s: BuildSession, inst: CopyInstruction): Promise<Gathered> {
  const excluded = excluder(inst.exclude);
  const roots: CopyRoot[] = [];
  const urls = urlSources(inst);
  const sels = await selectAll(s, inst);
  for (const u of urls) {
    const d = await fetchOnce(s, u, inst);
    const st = await fsp.lstat(d.file);
    const stats = Object.assign(st, { mode: (st.mode & ~0o7777) | 0o600, mtime: d.mtime ?? st.mtime });
    if (d.mtime) stats.mtimeMs = d.mtime.getTime();
    roots.push({ kind: 'file', item: { src: d.file, rel: d.name, stats }, name: d.name, url: u });
  }
  for (const sel of sels) {
    for (const root of sel.roots) {
      if (inst.kind === 'ADD' && root.type === 'file' && inst.unpack !== false) {
        const format = await archiveKind(root.abs, { want: root.stats, name: root.rel });
        if (format) {
          roots.push({ kind: 'archive', archive: root.abs, srcStat: root.stats, format });
          continue;
        }
      }
      if (root.type === 'dir') {
        const head: CopyItem[] = [];
        if (inst.parents && root.rel !== root.content)
          throw new VlabError(
            'E_UNSUPPORTED',
            `${inst.kind} --parents ${root.rel}: a directory source reached through a symlink (to ${root.content || '.'}) is not supported with --parents; name the directory itself`,
          );
        if (inst.parents && root.rel) {
          // --parents keeps the source's path: its parent dirs are recreated under dest, as the walk saw them.
          const t = await s.context.walk();
          for (const rel of root.rel.split('/').map((_, i, a) => a.slice(0, i + 1).join('/')))
            head.push({ src: s.context.abs(rel), root: s.context.root, rel, stats: s.context.dirStats(t, rel) });
        }
        // the entries are the table's, under what the source resolved to (a symlink's target)
        const cut = inst.parents || !root.content ? 0 : root.content.length + 1;
        const { table, lo, hi } = await s.context.subtree(root);
        const index = new Uint32Array(hi - lo);
        let n = 0;
        for (let i = lo; i < hi; i++)
          if (!inst.exclude.length || !excluded(relativeTo(root.content, table.rels[i]!))) index[n++] = i;
        const tree = { context: s.context, table, cut };
        roots.push({ kind: 'tree', head, tree, index: n === index.length ? index : index.slice(0, n) });
      } else if (!excluded(path.posix.basename(root.rel))) {
        const name = inst.parents ? root.rel : path.posix.basename(root.rel);
        roots.push({
          kind: 'file',
          item: { src: root.abs, root: s.context.root, rel: name, stats: root.stats },
          name,
          parents: inst.parents,
        });
      }
    }
  }
  const count = sels.reduce((n, sel) => n + sel.roots.length, 0) + urls.length;
  return { roots, count, wildcard: inst.sources.some(isGlob) };
}

/** Sources of COPY --from: a path (or a last-component wildcard) resolved inside the other stage's root. */
async function matchInRoot(
  root: string,
  pattern: string,
  inst: CopyInstruction,
): Promise<{ host: string; name: string }[]> {
  const clean = path.posix.normalize(`/${pattern}`);
  const dir = path.posix.dirname(clean);
  const base = path.posix.basename(clean);
  if (!isGlob(clean)) {
    const host = await resolveInRoot(root, clean);
    if (!(await fsp.lstat(host).catch(() => undefined)))
      throw new VlabError('E_COPY_SOURCE', `${inst.kind} --from=${inst.from}: ${pattern} not found`);
    return [{ host, name: base || '/' }];
  }
  if (isGlob(dir))
    throw new VlabError(
      'E_UNSUPPORTED',
      `${inst.kind} --from: wildcards are supported in the last path component only (${pattern})`,
    );
  const hostDir = await resolveInRoot(root, dir);
  const matches = compileGlob(base);
  const names = (await fsp.readdir(hostPath(hostDir), { encoding: 'buffer' }).catch(() => [] as Buffer[]))
    .map((n) => nameFromBytes(n)) // names as their bytes (fsname.ts)
    .filter(matches)
    .sort();
  if (!names.length) throw new VlabError('E_COPY_SOURCE', `${inst.kind} --from=${inst.from}: no match for ${pattern}`);
  // a match that is a symlink is followed, in the stage's root (as a path without wildcards is);
  // the matches share their directories' fds (the same dir for each)
  const dirs = new DirsInRoot(path.resolve(root));
  // all settled before the fds are closed: a resolution still running would open more
  const found = await Promise.allSettled(
    names.map(async (n) => {
      const host = await resolveInRoot(root, path.posix.join(dir, n), true, undefined, dirs);
      if (!(await fsp.lstat(hostPath(host)).catch(() => undefined)))
        throw new VlabError('E_COPY_SOURCE', `${inst.kind} --from=${inst.from}: ${n} is a symlink to nothing`);
      return { host, name: n };
    }),
  );
  dirs.close();
  return found.map((r) => {
    if (r.status === 'rejected') throw r.reason;
    return r.value;
  });
}
