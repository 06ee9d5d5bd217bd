/**
 * A disk that fails at writeback, as a thin-provisioned volume (or one that dies) does: an ext4
 * (no journal) on a loop device whose sparse backing file lives on a tmpfs much smaller than it.
 * Writes land in the page cache and succeed; once `fill()` has taken the tmpfs's last page, the
 * writeback of new data fails (ENOSPC from fdatasync, EIO or ENOSPC from syncfs), while blocks
 * already written (inode tables, directories, bitmaps) are still rewritten in place. Root only.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface ThinDisk {
  /** The ext4's mount point. */
  dir: string;
  /** Make everything written so far durable (so its blocks exist in the backing file). */
  sync(): void;
  /** Take the backing tmpfs's free space: writeback of new data fails from now on. */
  fill(): void;
  /** Unmount both (the loop device goes with the ext4: autoclear), remove the temp dirs. */
  close(): void;
}

/** Why a thin disk cannot be made here, or undefined. */
export function thinDiskMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (mounts a tmpfs and a loop device)';
  try {
    execFileSync('mkfs.ext4', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'mkfs.ext4 is not installed (e2fsprogs)';
  }
  return undefined;
}

export function thinDisk(backingMiB = 16, sizeMiB = 256): ThinDisk {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'vlab-thin-'));
  const tmpfs = path.join(base, 't');
  const dir = path.join(base, 'm');
  fs.mkdirSync(tmpfs);
  fs.mkdirSync(dir);
  const img = path.join(tmpfs, 'img');
  const mounted: string[] = [];
  const close = () => {
    let busy: unknown;
    for (const m of mounted.splice(0).reverse()) {
      // the loop device lets go of its backing file (on the tmpfs) a little after the ext4's
      // umount (autoclear runs from a workqueue): under load the tmpfs is busy for that while
      if (m === tmpfs) waitLoopReleased(img);
      try {
        execFileSync('umount', [m], { stdio: 'pipe' });
      } catch (e) {
        busy ??= e; // an fd still open on it: detached now, gone with the fd; the test fails
        execFileSync('umount', ['-l', m]);
      }
    }
    fs.rmSync(base, { recursive: true, force: true });
    if (busy) throw busy;
  };
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${backingMiB}m,mode=0700`, 'tmpfs', tmpfs]);
    mounted.push(tmpfs);
    fs.writeFileSync(img, '');
    fs.truncateSync(img, sizeMiB << 20);
    execFileSync('mkfs.ext4', ['-q', '-F', '-O', '^has_journal', '-E', 'lazy_itable_init=1,nodiscard', img]);
    execFileSync('mount', ['-o', 'loop,errors=continue', img, dir]);
    mounted.push(dir);
  } catch (e) {
    close();
    throw e;
  }
  return {
    dir,
    sync: () => execFileSync('sync', ['-f', dir]),
    fill: () => {
      const st = fs.statfsSync(tmpfs);
      execFileSync('fallocate', ['-l', String(st.bavail * st.bsize), path.join(tmpfs, 'filler')]);
    },
    close,
  };
}

/** Detach any loop device still backed by `file`, and wait (at most 5 s) until none is. */
function waitLoopReleased(file: string): void {
  const deadline = Date.now() + 5000;
  for (;;) {
    const devs = execFileSync('losetup', ['-n', '-O', 'NAME', '-j', file], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    if (!devs.length || Date.now() > deadline) return;
    for (const d of devs) spawnSync('losetup', ['-d', d], { stdio: 'ignore' });
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
}
