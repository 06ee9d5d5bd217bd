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

const log = debuglog('vlab');

/** Undo steps of the views made for one RUN, run in reverse order after it. */
export type Undo = (() => Promise<void>)[];

/**
 * Host path to mount for `source` under `root` (`where` names the root in errors). Read-only:
 * the resolved path itself. `rw`: a throwaway view in a fresh dir under `scratch` (on the
 * store's filesystem): an overlay on a directory (a copy where overlay cannot be mounted, e.g.
 * rootless), a copy of a file. Throws E_RUN_MOUNT when the source is not in the root.
 */
export async function bindSource(
  root: string,
  source: string,
  rw: boolean,
  where: string,
  scratch: string,
  undo: Undo,
): Promise<string> {
  const src = await resolveInRoot(root, source);
  const st = await fsp.stat(src).catch(() => undefined);
  if (!st) {
    throw new VlabError(
      'E_RUN_MOUNT',
      `RUN --mount=type=bind,source=${source}: not found in ${where} (symlinks are followed inside ${where}, as BuildKit does: a link to /x means /x in ${where}, never on the host)`,
      { details: { source } },
    );
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
