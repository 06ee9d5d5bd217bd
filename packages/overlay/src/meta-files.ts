/**
 * The snapshot metadata's files: read when they changed on disk (by a stamp), and replaced
 * atomically (a temp file renamed over them). A `durable` write's data is on disk before the
 * rename (a crash leaves the old document or the new, never half of one), and the rename itself
 * once the caller's `syncDir` returns; the others are only in the page cache, for a document whose
 * loss after a crash is harmless (store.ts: the volatile records).
 */
import { closeSync, fsync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';

const fsyncAsync = promisify(fsync);

/** Whether `name` (in the store root) is the temp file of an interrupted metadata write. */
export function isMetadataTemp(name: string): boolean {
  return /^metadata(\.volatile)?\.json\.tmp-/.test(name);
}

/** The file's identity and version: changes whenever it is replaced. */
function stampOf(file: string): string | undefined {
  try {
    const st = statSync(file);
    return `${st.ino}:${st.mtimeMs}:${st.size}`;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    return undefined;
  }
}

/**
 * The text of `file` if its stamp is not `known` (undefined: unchanged, or missing when `known` is
 * ''), with its new stamp. Synchronous: µs, on the critical path of every step.
 */
export function readIfChanged(file: string, known: string): { text: string; stamp: string } | undefined {
  const stamp = stampOf(file);
  if (stamp === undefined || stamp === known) return undefined;
  return { text: readFileSync(file, 'utf8'), stamp };
}

/**
 * Replace `file` with `text`; its new stamp. Only the fsync of a durable write goes to the thread
 * pool (it waits for the disk); the rest is µs, synchronous.
 */
export async function replaceFile(file: string, text: string, durable: boolean): Promise<string> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    try {
      writeFileSync(fd, text);
      if (durable) await fsyncAsync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    // e.g. ENOSPC: no half-written temp file stays behind
    rmSync(tmp, { force: true });
    throw e;
  }
  return stampOf(file)!;
}

/** Makes the renames done in `dir` durable. */
export async function syncDir(dir: string): Promise<void> {
  const fd = openSync(dir, 'r');
  try {
    await fsyncAsync(fd);
  } finally {
    closeSync(fd);
  }
}

let boot: string | undefined;
/** This boot's id: a volatile document of another boot is from before a crash or a reboot. */
export function bootId(): string {
  if (boot === undefined) {
    try {
      boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      boot = ''; // no /proc: volatile records are then kept across reboots (still removed when stale)
    }
  }
  return boot;
}
