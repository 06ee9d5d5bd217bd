import fsp from 'node:fs/promises';
import path from 'node:path';
import { UnionView, type Snapshotter } from '@vlab/overlay';
import type { CopyInstruction } from '@vlab/dockerfile';
import { VlabError } from '@vlab/errors';
import type { ContainerConfig, LayerRef } from '../image/types.ts';
import { MEDIA } from '../image/types.ts';
import { packEntries, type PackEntry } from '../archive/tar.ts';
import { resolveUserInView } from '../exec/index.ts';
import { excluder, relativeTo } from '../context/context.ts';
import type { BuildSession } from './context.ts';
import { chainIds } from '../image/chain.ts';
import { destRule, heredocFiles, parseChmod } from './ops/copy.ts';

/**
 * COPY from the build context straight into a layer tar: no snapshot, no mount, no copy and no
 * diff. The files are read once, into the blob, while it is hashed; a later RUN unpacks the layer
 * only if it needs a tree (LayerManager.ensureSnapshot). The image below is read through a
 * UnionView of the layer dirs (or blobs) to apply Docker's destination rules. Returns undefined
 * when a case needs a real tree (a symlink on the destination path), so the caller falls back.
 */
export async function fastCopy(
  s: BuildSession,
  inst: CopyInstruction,
  config: ContainerConfig,
  layers: LayerRef[],
  opts: { learnHashes?: boolean } = {},
): Promise<LayerRef | 'fallback'> {
  // VLAB_NO_FAST_COPY=1 forces the mounted path (the parity tests compare both).
  if (process.env.VLAB_NO_FAST_COPY === '1' || inst.from || inst.kind !== 'COPY' || inst.parents) return 'fallback';
  const view = await unionOf(s, layers);
  if (!view) return 'fallback';
  const lstat = (p: string) => view.stat(p).catch(() => undefined);
  const rawDest = path.posix.resolve(config.WorkingDir || '/', inst.dest);
  const destDir = inst.dest.endsWith('/') ? rawDest : path.posix.dirname(rawDest);
  // Any symlink on the way to the destination: let the mounted path resolve it like a container would.
  const chain = ancestry(rawDest);
  for (const p of chain) if ((await lstat(p))?.isSymbolicLink()) return 'fallback';

  const owner = inst.chown ? await resolveUserInView(view, inst.chown, 'chown') : { uid: 0, gid: 0 };
  const chmod = parseChmod(inst);
  const epoch = s.sourceDateEpoch;
  const clamp = (d: Date) => (epoch !== undefined && d.getTime() > epoch * 1000 ? new Date(epoch * 1000) : d);
  const now = clamp(new Date());
  const entries = new Map<string, PackEntry>();
  const add = (e: PackEntry) => entries.set(e.name, e);

  // Parent directories: kept as the image has them, or created 0755 (owned by --chown) as docker does.
  const existingDest = await lstat(rawDest);
  for (const p of ancestry(destDir)) {
    const st = await lstat(p);
    if (st && !st.isDirectory())
      throw new VlabError('E_NOT_A_DIRECTORY', `${p} exists in the image and is not a directory`);
    add(
      st
        ? { name: p.slice(1), type: 'directory', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: now }
        : { name: p.slice(1), type: 'directory', mode: 0o755, ...owner, mtime: now },
    );
  }

  const items: { rel: string; abs: string; type: 'file' | 'dir' | 'symlink'; stats: import('node:fs').Stats }[] = [];
  const excluded = excluder(inst.exclude);
  let count = 0;
  let wildcard = false;
  const heredocs = inst.heredocs.length ? await heredocFiles(s.store.path('tmp'), inst.heredocs) : undefined;
  const heredocDir = heredocs?.dir;
  try {
    for (const d of heredocs?.items ?? []) {
      items.push({ rel: d.rel, abs: d.src, type: 'file', stats: d.stats });
      count++;
    }
    const plans: { root: (typeof items)[number]; sub: typeof items }[] = [];
    for (const src of inst.sources) {
      wildcard ||= /[*?[]/.test(src);
      for (const root of (await s.context.select(src)).roots) {
        count++;
        plans.push({
          root,
          sub:
            root.type === 'dir'
              ? (await s.context.subtree(root)).filter((e) => !excluded(relativeTo(root.rel, e.rel)))
              : [],
        });
      }
    }
    const destIsDir = destRule(inst, inst.dest, existingDest?.isDirectory() === true, count, wildcard);
    // A file lands at dest itself unless dest is a directory; a directory's contents always go into dest.
    const into = (rel: string) => path.posix.join(rawDest, rel).slice(1);
    const fileTarget = (name: string) => (destIsDir ? into(name) : rawDest.slice(1));
    // learnHashes: the context files not yet hashed get their content hash from the same read
    // that packs them (the caller then computes the cache key without reading them again).
    const hashes = s.context.hashCache;
    const inodes = new WeakMap<PackEntry, string>();
    const entryOf = (
      name: string,
      e: { abs: string; type: string; stats: import('node:fs').Stats },
      fromContext = true,
    ): PackEntry => {
      const st = e.stats;
      const base = { name, uid: owner.uid, gid: owner.gid, mtime: clamp(st.mtime), source: e.abs };
      if (e.type === 'dir') return { ...base, type: 'directory', mode: chmod ?? st.mode & 0o7777 };
      if (e.type === 'symlink') return { ...base, type: 'symlink', mode: 0o777 };
      const learn = opts.learnHashes && fromContext && hashes.known(e.abs, st) === undefined;
      const file: PackEntry = {
        ...base,
        type: 'file',
        mode: chmod ?? st.mode & 0o7777,
        size: st.size,
        ...(learn ? { onContentHash: (h: string) => hashes.record(e.abs, st, h) } : {}),
      };
      if (st.nlink > 1) inodes.set(file, `${st.dev}:${st.ino}`);
      return file;
    };
    const destDirEntry = (): PackEntry =>
      existingDest?.isDirectory()
        ? dirEntry(rawDest, existingDest, now)
        : { name: rawDest.slice(1), type: 'directory', mode: 0o755, ...owner, mtime: now };
    if (destIsDir) add(destDirEntry());
    for (const d of items) add(entryOf(fileTarget(d.rel), d, false));
    for (const { root, sub } of plans) {
      if (root.type === 'dir') {
        if (!destIsDir) add(destDirEntry());
        for (const e of sub) add(entryOf(into(relativeTo(root.rel, e.rel)), e));
      } else if (!excluded(path.posix.basename(root.rel))) {
        add(entryOf(fileTarget(path.posix.basename(root.rel)), root));
      }
    }
    entries.delete('');
    for (const e of entries.values()) if (e.type === 'symlink') e.linkname = await fsp.readlink(e.source!);
    const sorted = linkHardLinks(
      [...entries.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
      inodes,
    );
    const blob = await s.store.blobs.create();
    try {
      await packEntries(sorted, blob.stream);
    } catch (e) {
      await blob.abort();
      throw e;
    }
    const stored = await blob.commit();
    return { digest: stored.digest, diffId: stored.digest, size: stored.size, mediaType: MEDIA.layer };
  } finally {
    if (heredocDir) await fsp.rm(heredocDir, { recursive: true, force: true });
  }
}

/**
 * Files of one COPY that are hard links to each other stay linked, as BuildKit keeps them: in
 * archive order the first is packed, the others become links to it (as the snapshot diff does).
 */
function linkHardLinks(sorted: PackEntry[], inodes: WeakMap<PackEntry, string>): PackEntry[] {
  const first = new Map<string, string>();
  return sorted.map((e) => {
    const id = inodes.get(e);
    if (id === undefined) return e;
    const target = first.get(id);
    if (target === undefined) {
      first.set(id, e.name);
      return e;
    }
    return { name: e.name, type: 'link', linkname: target, mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime };
  });
}

function dirEntry(p: string, st: { mode: number; uid: number; gid: number }, mtime: Date): PackEntry {
  return { name: p.slice(1), type: 'directory', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime };
}

/** '/a/b/c' → ['/a', '/a/b', '/a/b/c'] */
function ancestry(p: string): string[] {
  const parts = p.split('/').filter(Boolean);
  return parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`);
}

/**
 * A read-only union of `layers` without mounting: each layer's committed snapshot dir when the
 * overlay driver has it, else its uncompressed blob. Undefined when a layer is only compressed.
 */
async function unionOf(s: BuildSession, layers: LayerRef[]): Promise<UnionView | undefined> {
  const snaps: Snapshotter = await s.layers.snapshots();
  const chain = chainIds(layers.map((l) => l.diffId));
  // held before they are looked at: a gc cannot take a snapshot dir while the view reads it
  await s.store.lease.holdLayers(layers);
  const paths: string[] = [];
  for (const [i, l] of layers.entries()) {
    const snap = snaps.driver === 'overlay' ? await snaps.stat(chain[i]!) : undefined;
    if (snap) {
      const m = await snaps.mounts(chain[i]!);
      paths.push(m[0]!.source);
    } else if (!l.mediaType.includes('gzip')) {
      paths.push(s.store.blobs.path(l.digest));
    } else return undefined;
  }
  return new UnionView(paths);
}
