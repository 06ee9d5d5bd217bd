/**
 * The host side of `RUN --mount=type=bind`, as BuildKit gives it: the source is resolved inside
 * its root (the build context, or a stage's tree), so neither a symlink nor `..` leads out of it
 * (`link -> /x` means `<root>/x`); the step gets a read-only view, and with `rw` a throwaway one
 * whose writes are gone after the step. The root on disk is never written, which is also why the
 * resolved path stays valid until it is mounted: nothing in a build can change it.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { debuglog, promisify } from 'node:util';
import { VlabError } from '@vlab/errors';
import { mountThrowaway, unmountThrowaway } from '@vlab/overlay';
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
 * Host path to mount for `source` under `root`. Read-only: the resolved path itself, or, in the
 * build context when .dockerignore excludes something under it, a view without it
 * (context-view.ts). `rw`: a throwaway view of that in a fresh dir under `scratch`: an overlay on
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
  let src = await resolveInRoot(root, source);
  const st = await fsp.stat(src).catch(() => undefined);
  const shows = context && st ? await context.shows(path.relative(root, src)) : undefined;
  if (!st || shows?.shown === false) {
    throw new VlabError(
      'E_RUN_MOUNT',
      `RUN --mount=type=bind,source=${source}: not found in ${where}${shows ? ' (or excluded by .dockerignore)' : ''} (symlinks are followed inside ${where}, as BuildKit does: a link to /x means /x in ${where}, never on the host)`,
      { details: { source } },
    );
  }
  // Something excluded under it: a view without it; otherwise the source itself, nothing copied.
  if (context && shows?.hides && st.isDirectory())
    src = await contextView(context, path.relative(root, src), scratch, undo);
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
  const copy = path.join(dir, 'copy');
  await promisify(execFile)('cp', ['-a', '--', src, copy]).catch((e: Error & { stderr?: string }) => {
    throw new VlabError(
      'E_RUN_MOUNT',
      `RUN --mount=type=bind,source=${source},rw: copying it failed: ${(e.stderr || e.message).trim()}`,
      { cause: e },
    );
  });
  return copy;
}
