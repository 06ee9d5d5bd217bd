/**
 * A full store filesystem, however it surfaces — ENOSPC/EDQUOT from a blob write, a snapshot
 * write, a cache record, or a helper's stderr — becomes one typed error, E_NO_SPACE, that says
 * where and what to do. A RUN whose own writes hit the limit (its upper dir is on the store's
 * filesystem) fails inside with its own exit code; the builder then finds the filesystem full and
 * reports E_NO_SPACE too, with the RUN's failure as the cause.
 */
import fsp from 'node:fs/promises';
import { VlabError, isVlabError } from '@vlab/errors';

const ERRNO = new Set(['ENOSPC', 'EDQUOT']);
const TEXT = /No space left on device|Disk quota exceeded/;
/** Below this much free space (or no free inode) a failed step counts as out of space. */
const NEARLY_FULL = 1 << 20;

/** Whether `e` or anything in its cause chain is an out-of-space error. */
export function isNoSpace(e: unknown): boolean {
  for (let c = e, depth = 0; c && depth < 10; c = (c as { cause?: unknown }).cause, depth++) {
    if (isVlabError(c, 'E_NO_SPACE')) return true;
    const code = (c as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && ERRNO.has(code)) return true;
    if (c instanceof Error && TEXT.test(c.message)) return true;
  }
  return false;
}

/** E_NO_SPACE for store `root`, keeping a step's location and the original error as the cause. */
export function noSpaceError(root: string, e: unknown): VlabError {
  if (isVlabError(e, 'E_NO_SPACE')) return e;
  const what = e instanceof Error ? `${e.message}: ` : '';
  return new VlabError(
    'E_NO_SPACE',
    `${what}no space left on the store's filesystem (${root}): free space there (e.g. "vbuild prune") and build again`,
    {
      cause: e,
      location: e instanceof VlabError ? e.location : undefined,
    },
  );
}

/** `e` as E_NO_SPACE when it is one, else `e` unchanged. */
export function asNoSpace(root: string, e: unknown): unknown {
  return isNoSpace(e) ? noSpaceError(root, e) : e;
}

/**
 * A failed write or flush of store data: E_NO_SPACE when the filesystem is full (ENOSPC: also a
 * thin volume out of blocks at writeback), else E_STORE (EIO: the disk failed under it).
 */
export function storeWriteError(root: string, e: unknown): VlabError {
  if (isNoSpace(e)) return noSpaceError(root, e);
  // a failed syncfs comes from a helper (E_TOOL): the store's data is what failed
  if (isVlabError(e) && e.code !== 'E_TOOL') return e;
  const what = e instanceof Error ? e.message : String(e);
  return new VlabError(
    'E_STORE',
    `writing to the store (${root}) failed: ${what}: check the disk it is on (dmesg) and build again`,
    { cause: e },
  );
}

/** Whether the filesystem holding `dir` is (nearly) out of blocks or inodes. */
export async function nearlyFull(dir: string): Promise<boolean> {
  const st = await fsp.statfs(dir).catch(() => undefined);
  if (!st) return false;
  return freeOf(st) < NEARLY_FULL || (st.files > 0 && st.ffree === 0);
}

// root writes into the blocks reserved for it: it is out only when those are gone too
const freeOf = (st: { bfree: number; bavail: number; bsize: number }) =>
  (process.getuid?.() === 0 ? st.bfree : st.bavail) * st.bsize;

/** Bytes that may still be written on the filesystem holding `dir` before it counts as nearly full (Infinity when unknown). */
export async function writableBytes(dir: string): Promise<number> {
  const st = await fsp.statfs(dir).catch(() => undefined);
  return st ? Math.max(0, freeOf(st) - NEARLY_FULL) : Infinity;
}
