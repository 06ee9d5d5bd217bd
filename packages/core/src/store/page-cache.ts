/**
 * Dropping what a blob writer has flushed from the page cache (native/vlab-fadvise.c:
 * posix_fadvise DONTNEED, which Node lacks). Writing a 1.2 GB layer into 1.2 GB of new page-cache
 * pages took ~8x as long as into pages reused as it goes (measured on this 2-core VM, see
 * bench/README.md "copy-huge, session 24"): the kernel hands back the pages it just freed. Only
 * ranges already durable (Writeback's flushes) are dropped; a read later comes from the disk.
 * Without the addon (no C compiler, VLAB_NO_NATIVE=1) nothing is dropped: slower, same bytes.
 */
import { loadCoreAddon } from '../fsutil/native-addon.ts';

interface Fadvise {
  /** posix_fadvise(fd, offset, length, POSIX_FADV_DONTNEED): 0 or -errno. */
  dontneed(fd: number, offset: number, length: number): number;
  /** posix_fadvise(fd, offset, length, POSIX_FADV_WILLNEED): 0 or -errno (an older build lacks it). */
  willneed?(fd: number, offset: number, length: number): number;
}

let addon: Fadvise | null | undefined;

/** Null when not built or when VLAB_NO_NATIVE=1. */
function load(): Fadvise | null {
  if (process.env.VLAB_NO_NATIVE === '1') return null;
  return loadCoreAddon<Fadvise>('vlab-fadvise') ?? null;
}

/**
 * Drop bytes [from, to) of the file on `fd` from the page cache (Writeback's `flushed`); a no-op
 * without the addon. Advice only: an error (none is expected for a regular file) changes nothing.
 */
export function dropFlushed(fd: number, from: number, to: number): void {
  addon ??= load();
  addon?.dontneed(fd, from, to - from);
}

/**
 * Start reading bytes [0, length) of the file on `fd` into the page cache, without waiting
 * (context/hash-cache.ts, TableHashes.prefetch). False when it cannot (no addon, or one built before `willneed`).
 */
export function willNeed(fd: number, length: number): boolean {
  addon ??= load();
  if (!addon?.willneed) return false;
  addon.willneed(fd, 0, length);
  return true;
}

/** Whether `willNeed` can do anything here (the addon is built and has it). */
export function canWillNeed(): boolean {
  addon ??= load();
  return typeof addon?.willneed === 'function';
}
