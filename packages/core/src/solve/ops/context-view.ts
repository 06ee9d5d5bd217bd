/**
 * A context directory as `RUN --mount=type=bind` shows it when .dockerignore excludes something
 * under it: BuildKit transfers the context filtered, so an ignored file is not in the mount. The
 * view is a tree under the store's tmp holding only the entries the context shows: files hard-linked
 * when the store is on the context's filesystem (no data copied), copied otherwise (at most
 * MAX_VIEW_COPY_BYTES), directories and symlinks made anew with the originals' mode, owner and
 * times. bind-source.ts mounts it read-only, or under a throwaway overlay for `rw`, so the linked
 * files are never written. Removed after the step (the undo list).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { VlabError } from '@vlab/errors';
import { hostPath, openSameSync, readlinkInRoot } from '@vlab/overlay';
import type { BuildContext, ContextEntry } from '../../context/context.ts';
import type { StatLike } from '../../context/walk.ts';
import type { Undo } from './bind-source.ts';

/** Bytes a view may copy when it cannot hard-link (the store on another filesystem). */
export const MAX_VIEW_COPY_BYTES = 1 << 30;

/** Builds the view of `rel` ('' = the context root) under `scratch`; returns its path. */
export async function contextView(
  ctx: BuildContext,
  rel: string,
  scratch: string,
  undo: Undo,
  maxCopy = MAX_VIEW_COPY_BYTES,
): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(scratch, `ctxview-${process.pid}-`));
  undo.push(() => fsp.rm(dir, { recursive: true, force: true }));
  const view = path.join(dir, 'view');
  const prefix = rel ? `${rel}/` : '';
  const dirs: [string | Buffer, StatLike][] = [];
  const made = new Set<string>();
  let link = true;
  let copied = 0;
  const t = await ctx.walk();
  /** A directory of the view, with its original's metadata as walked (set at the end, after its children). */
  const mkdir = async (relIn: string) => {
    if (made.has(relIn)) return;
    if (relIn) await mkdir(path.posix.dirname(relIn) === '.' ? '' : path.posix.dirname(relIn));
    const st = ctx.dirStats(t, path.posix.join(rel, relIn).replace(/^\.$|\/$/, ''));
    await fsp.mkdir(hostPath(path.join(view, relIn)), { mode: 0o700 }); // names as bytes (fsname.ts)
    made.add(relIn);
    dirs.push([hostPath(path.join(view, relIn)), st]);
  };
  await mkdir('');
  for (let i = 0; i < t.length; i++) {
    const e = ctx.entry(t, i);
    if (!e.rel.startsWith(prefix) || e.rel === rel) continue;
    const relIn = e.rel.slice(prefix.length);
    const to = hostPath(path.join(view, relIn));
    const parent = path.posix.dirname(relIn);
    await mkdir(parent === '.' ? '' : parent); // an excluded parent of a re-included entry
    if (e.type === 'dir') await mkdir(relIn);
    else if (e.type === 'symlink') {
      await fsp.symlink(hostPath(readlinkInRoot(ctx.root, e.rel)), to);
      await fsp.lchown(to, e.stats.uid, e.stats.gid);
      await fsp.lutimes(to, e.stats.atimeMs / 1000, e.stats.mtimeMs / 1000);
    } else {
      if (link) link = await hardLink(e, to);
      if (!link) copied += await copyFile(e, to, maxCopy - copied, maxCopy);
    }
  }
  for (const [d, st] of dirs.reverse()) {
    await fsp.chown(d, st.uid, st.gid);
    await fsp.chmod(d, st.mode & 0o7777);
    await fsp.utimes(d, st.atimeMs / 1000, st.mtimeMs / 1000);
  }
  return view;
}

/** Links the walked file; false when the filesystem refuses (another one, or protected_hardlinks). */
async function hardLink(e: ContextEntry, to: string | Buffer): Promise<boolean> {
  try {
    await fsp.link(hostPath(e.abs), to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EXDEV' || code === 'EPERM' || code === 'EMLINK') return false;
    throw err;
  }
  // link(2) follows a directory symlink swapped in since the walk: keep only the file walked
  const st = await fsp.lstat(to);
  if (st.ino !== e.stats.ino || st.dev !== e.stats.dev) {
    await fsp.rm(to);
    throw changed(e.rel);
  }
  return true;
}

/** Copies the walked file (opened as that very file: open-same.ts) with its metadata; returns its size. */
async function copyFile(e: ContextEntry, to: string | Buffer, budget: number, max: number): Promise<number> {
  const { fd, st } = openSameSync(e.abs, e.stats, e.rel);
  try {
    if (st.size > budget)
      throw new VlabError(
        'E_RUN_MOUNT',
        `RUN --mount=type=bind: the context view (the bound source without what .dockerignore excludes) needs more than ${max} bytes copied, as the store is on another filesystem than the context; bind a smaller source, or put the store (VLAB_ROOT) on the context's filesystem, where the view is made of hard links`,
      );
    const out = fs.createWriteStream(to, { mode: 0o600, flags: 'wx' });
    if (st.size === 0) out.end();
    await pipeline(st.size ? fs.createReadStream('', { fd, start: 0, end: st.size - 1, autoClose: false }) : [], out);
    await fsp.chown(to, st.uid, st.gid);
    await fsp.chmod(to, st.mode & 0o7777);
    await fsp.utimes(to, st.atimeMs / 1000, st.mtimeMs / 1000);
    return st.size;
  } finally {
    fs.closeSync(fd);
  }
}

function changed(rel: string): VlabError {
  return new VlabError(
    'E_RUN_MOUNT',
    `RUN --mount=type=bind: "${rel}" changed in the build context while the build ran; run the build again`,
  );
}
