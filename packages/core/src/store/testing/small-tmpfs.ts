/**
 * A real filesystem that fills up: a fresh tmpfs of a few MiB, for tests of what a full (or
 * read-only) store does. Root only.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Why a tmpfs cannot be mounted here, or undefined. */
export const tmpfsMissing = (): string | undefined =>
  process.getuid?.() !== 0 ? 'needs root (mounts a tmpfs)' : undefined;

export interface SmallTmpfs {
  dir: string;
  /** Take all its free space: the next write that needs a block fails with ENOSPC. */
  fill(): void;
  /** Unmount it and remove its mount point. */
  close(): void;
}

export function smallTmpfs(mib: number, prefix = 'vlab-tmpfs-'): SmallTmpfs {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=0700`, 'tmpfs', dir]);
  return {
    dir,
    fill: () => {
      const st = fs.statfsSync(dir);
      execFileSync('fallocate', ['-l', String(st.bavail * st.bsize), path.join(dir, 'filler')]);
    },
    close: () => {
      execFileSync('umount', [dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
