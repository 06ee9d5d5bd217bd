/**
 * The host side of `RUN --mount=type=bind`, as BuildKit gives it: the source is resolved inside
 * its root (the build context, or a stage's tree), so neither a symlink nor `..` leads out of it
 * (`link -> /x` means `<root>/x`); the step gets a read-only view, and with `rw` a throwaway one
 * whose writes are gone after the step. The root on disk is never written by the build; but a
 * context is untrusted and may change meanwhile (a directory on the way swapped for a symlink to
 * a host directory), so the resolved source is pinned: opened in-root (open-same.ts pinInRoot) and
 * mounted or copied through its fd's /proc link, which names that very file, not its path.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { debuglog, promisify } from 'node:util';
import { VlabError, isVlabError } from '@vlab/errors';
import { lstatInRoot, mountPinned, mountThrowaway, pinInRoot, unmountAll, unmountThrowaway } from '@vlab/overlay';
import { resolveInRoot } from '../../fsutil/in-root.ts';
import type { BuildContext } from '../../context/context.ts';
import { contextView } from './context-view.ts';

const log = debuglog('vlab');

/** Undo steps of the views made for one RUN, run in reverse order after it. */
export type Undo = (() => Promise<void>)[];

export interface BindSourceInput {
  /** The context dir or a stage's tree. */
  root: string;
  source: string;
  rw: boolean;
  /** Names the root in errors. */
  where: string;
  /** Where views are made: the store's tmp (the store's filesystem). */
  scratch: string;
  undo: Undo;
  /** Set when `root` is the build context: the mount shows what it shows (.dockerignore applied). */
  context?: BuildContext;
}

/**
 * Host path to mount for `source` under `root`. Read-only: the resolved source pinned and bound
 * under `scratch` (staged), or, in the build context when .dockerignore excludes something under
 * it, a view without it (context-view.ts). `rw`: a throwaway view of that in a fresh dir under `scratch`: an overlay on
 * a directory (a copy where overlay cannot be mounted, e.g. rootless), a copy of a file. Throws
 * E_RUN_MOUNT when the source is not in the root (or excluded).
 */
export async function bindSource({
  root,
  source,
  rw,
  where,
  scratch,
  undo,
  context,
}: BindSourceInput): Promise<string> {
  const rel = path.relative(path.resolve(root), await resolveInRoot(root, source));
  const shows = context ? await context.shows(rel) : undefined;
  const pinned = shows?.shown === false ? undefined : pin(root, rel, source, where);
  if (!pinned) {
    throw new VlabError(
      'E_RUN_MOUNT',
      `RUN --mount=type=bind,source=${source}: not found in ${where}${shows ? ' (or excluded by .dockerignore)' : ''} (symlinks are followed inside ${where}, as BuildKit does: a link to /x means /x in ${where}, never on the host)`,
      { details: { source } },
    );
  }
  const { fd, st } = pinned;
  let src: string;
  let view = false;
  try {
    // Something excluded under it: a view without it (made from the walk); otherwise the source itself, nothing copied.
    view = !!context && !!shows?.hides && st.isDirectory();
    src = view ? await contextView(context!, rel, scratch, undo) : await staged(pinned, rel, scratch, undo, context);
  } finally {
    fs.closeSync(fd); // a mount holds what it shows
  }
  if (!rw) return src;
  const dir = await fsp.mkdtemp(path.join(scratch, `rwbind-${process.pid}-`));
  const remove = () => fsp.rm(dir, { recursive: true, force: true });
  if (st.isDirectory()) {
    try {
      const merged = await mountThrowaway(src, dir);
      // Unmount first: a removal through a live mount would reach into the source.
      undo.push(async () => {
        await unmountThrowaway(dir);
        await remove();
      });
      return merged;
    } catch (e) {
      log('rw bind of %s: overlay refused (%s), copying instead', source, (e as Error).message);
      await unmountThrowaway(dir); // throws if something stayed mounted: then dir is kept
      await remove();
      await fsp.mkdir(dir, { mode: 0o700 });
    }
  }
  undo.push(remove);
  // cp(1) walks a tree by its paths: a live context directory's copy is made from the walk (context-view.ts)
  if (context && st.isDirectory() && !view) src = await contextView(context, rel, scratch, undo);
  const copy = path.join(dir, 'copy');
  // a pinned source is a /proc fd link: a directory copied through it (`/.`), a file dereferenced
  const args = st.isDirectory() ? ['-a', '--', `${src}/.`, copy] : ['-a', '-L', '--', src, copy];
  await promisify(execFile)('cp', args).catch((e: Error & { stderr?: string }) => {
    throw new VlabError(
      'E_RUN_MOUNT',
      `RUN --mount=type=bind,source=${source},rw: copying it failed: ${(e.stderr || e.message).trim()}`,
      { cause: e },
    );
  });
  return copy;
}

/**
 * The resolved source `rel` under `root`, pinned (pinInRoot); undefined when nothing is there.
 * Replaced since it was resolved (a link swapped in on the way): E_RUN_MOUNT, build again.
 */
function pin(root: string, rel: string, source: string, where: string): { fd: number; st: fs.Stats } | undefined {
  try {
    return pinInRoot(root, rel);
  } catch (e) {
    if (!isVlabError(e) || e.code !== 'E_CONTEXT_CHANGED') throw e;
    if (!lstatInRoot(root, rel)) return undefined;
    throw new VlabError(
      'E_RUN_MOUNT',
      `RUN --mount=type=bind,source=${source}: it changed in ${where} while the build ran (replaced by a link, or not a file or directory); run the build again`,
      { details: { source }, cause: e },
    );
  }
}

/** Linux's O_PATH (Node does not name it). */
const O_PATH = 0o10000000;

/**
 * `/proc/<this pid>/fd/N` of a second O_PATH fd on the pinned file (opened through the first's
 * /proc/self/fd link: the same file), kept open until the step's undo: the runtime's mount (or
 * cp) of that path reaches the very file pinned, whatever its path names now.
 */
function keepPinned(fd: number, undo: Undo): string {
  const kept = fs.openSync(`/proc/self/fd/${fd}`, O_PATH);
  undo.push(async () => fs.closeSync(kept));
  return `/proc/${process.pid}/fd/${kept}`;
}

/**
 * The pinned source bound read-only under `scratch` (mountPinned): a path the runtime can mount,
 * showing that very file or directory. Where this process cannot mount (rootless): a context
 * directory's view made from the walk, a context file's or a stage file's copy through the fd, a
 * stage directory by its fd's /proc link (keepPinned: bindSource copies through it for `rw`; the
 * launcher mounts it read-only, checked, builtin-mounts.ts pinnedSource).
 */
async function staged(
  { fd, st }: { fd: number; st: fs.Stats },
  rel: string,
  scratch: string,
  undo: Undo,
  context: BuildContext | undefined,
): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(scratch, `bind-${process.pid}-`));
  const target = path.join(dir, 'src');
  // Unmount first: a removal through a live mount would reach into the source.
  undo.push(async () => {
    await unmountAll(target);
    await fsp.rm(dir, { recursive: true, force: true });
  });
  try {
    await mountPinned(fd, st.isDirectory(), target);
    return target;
  } catch (e) {
    if (!isVlabError(e) || e.code !== 'E_MOUNT') throw e;
    log('bind of %s: cannot mount it pinned (%s)', rel || '.', e.message);
    await fsp.rm(target, { recursive: true, force: true });
  }
  if (!context) {
    // A stage's file: copied through the fd. A directory: its fd's /proc link, kept open; a rw
    // one is copied through it (bindSource), a read-only one is mounted by the launcher from the
    // path the link shows and checked to be that very directory (builtin-mounts.ts pinnedSource:
    // mount(2) refuses a link to an fd of another mount namespace).
    if (st.isFile()) {
      await copyPinnedFile(fd, st, target);
      return target;
    }
    return keepPinned(fd, undo);
  }
  if (st.isDirectory()) return contextView(context, rel, scratch, undo);
  await copyPinnedFile(fd, st, target); // with its mode, mtime and owner, as the context view keeps them
  return target;
}

/**
 * The stage or context file pinned as `fd` copied to `target` (in this process's scratch dir) with the
 * pinned stat's mtime and, where this process may, its owner (then its mode again: chown clears
 * setuid/setgid), so the step sees the file as the stage has it.
 */
async function copyPinnedFile(fd: number, st: fs.Stats, target: string): Promise<void> {
  await fsp.copyFile(`/proc/self/fd/${fd}`, target);
  const out = fs.openSync(target, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    let owned = true;
    try {
      fs.fchownSync(out, st.uid, st.gid);
    } catch (e) {
      if (!['EPERM', 'EINVAL'].includes((e as NodeJS.ErrnoException).code!)) throw e; // unmapped owner
      owned = false;
    }
    // not the stage's owner (rootless): never a setuid/setgid file of ours
    fs.fchmodSync(out, st.mode & (owned ? 0o7777 : 0o1777));
    fs.futimesSync(out, st.atime, st.mtime);
  } finally {
    fs.closeSync(out);
  }
}
