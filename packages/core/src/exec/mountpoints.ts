/**
 * Mountpoints inside the snapshot, created for a run and removed after it, so that the layer diff
 * only shows what the process wrote (Docker and BuildKit do the same for /proc, /dev, /etc/hosts…).
 *
 * Rules:
 * - Only missing path components are created (directories; the last one an empty file when the
 *   mount source is a file). Existing entries are never touched.
 * - Afterwards each created entry is removed, deepest first, but only if it is still an empty
 *   directory / empty regular file: if the process wrote into it, it is the process's output.
 * - Creating an entry changes its parent directory's mtime (and, on overlayfs, copies the parent
 *   up); we put the parent's mtime back to the nanosecond, so a metadata-comparing diff sees it
 *   unchanged (ctime cannot be restored; atime is left alone, it is not part of a layer).
 * - Paths are resolved in-root (symlinks cannot point us outside the rootfs). Cleanup runs after
 *   the container is gone and touches an entry only if every directory from the root down to it
 *   is still a real directory: the container may have replaced one we made with a symlink to a
 *   host path (vlab-init does the same walk with O_NOFOLLOW).
 */
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  rmdirSync,
  unlinkSync,
  type BigIntStats,
} from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { InRootDirs, atFd, hostPath } from '@vlab/overlay';
import { resolveInRoot } from '../fsutil/in-root.ts';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;

const run = promisify(execFile);

export interface MountpointRequest {
  /** Path inside the container. */
  target: string;
  kind: 'dir' | 'file';
}

export interface CreatedMountpoints {
  /** The rootfs (host path) every entry is under. */
  root: string;
  /** Created host paths, in creation order. */
  created: { path: string; kind: 'dir' | 'file' }[];
  /** Existing directories whose times we must restore: host path → [atime, mtime] as "sec.nsec". */
  parents: Map<string, [string, string]>;
  /** Resolved host path of every request, in request order. */
  resolved: string[];
}

export async function createMountpoints(rootfs: string, reqs: MountpointRequest[]): Promise<CreatedMountpoints> {
  const root = path.resolve(rootfs);
  const out: CreatedMountpoints = { root, created: [], parents: new Map(), resolved: [] };
  const dirs = new InRootDirs(root + '/.');
  try {
    for (const req of reqs) {
      const host = await resolveInRoot(root, req.target);
      out.resolved.push(host);
      const rel = path.relative(root, host);
      if (rel === '') continue;
      let cur = root;
      const parts = rel.split(path.sep);
      for (let i = 0; i < parts.length; i++) {
        const next = path.join(cur, parts[i]);
        const last = i === parts.length - 1;
        // synchronous: a handful of µs-long metadata calls on the path of every RUN. Each entry
        // from its parent's fd (opened O_NOFOLLOW from its own parent's): a directory the tree's
        // writer swaps for a link to a host dir meanwhile is E_LAYER_UNSAFE, nothing made there
        const parentFd = dirs.dir(parts.slice(0, i));
        const at = hostPath(atFd(parentFd, parts[i]));
        if (!lstatOrUndef(at)) {
          if (!out.parents.has(cur) && !out.created.some((c) => c.path === cur)) {
            out.parents.set(cur, times(parentFd));
          }
          try {
            if (last && req.kind === 'file') closeSync(openSync(at, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644));
            else mkdirSync(at, { mode: 0o755 });
            out.created.push({ path: next, kind: last ? req.kind : 'dir' });
          } catch (e) {
            // Someone else made it meanwhile: not ours to remove.
            if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          }
        }
        cur = next;
      }
    }
    return out;
  } catch (e) {
    await removeMountpoints(out).catch(() => {});
    throw e;
  } finally {
    dirs.close();
  }
}

/**
 * Removes what `createMountpoints` made if still empty, and restores parent times. Idempotent.
 * Every entry and parent is reached from its parent's fd, each directory opened O_NOFOLLOW from
 * its own parent's (InRootDirs): the container may have swapped a directory on the way for a link
 * to a host directory, and then nothing there is removed or touched.
 */
export async function removeMountpoints(c: CreatedMountpoints): Promise<void> {
  // keep every fd opened: the parents' fds are handed to touch(1) after the walk
  let dirs: InRootDirs;
  try {
    dirs = new InRootDirs(c.root + '/.', Infinity);
  } catch {
    c.created.length = 0; // the rootfs is gone: nothing of ours is left to remove
    c.parents.clear();
    return;
  }
  try {
    for (const entry of [...c.created].reverse()) {
      try {
        const parts = partsInRoot(c.root, entry.path);
        if (!parts?.length) continue;
        const at = hostPath(atFd(dirs.dirOrErrno(parts.slice(0, -1)), parts[parts.length - 1]!));
        const st = lstatSync(at);
        if (entry.kind === 'dir' && st.isDirectory()) rmdirSync(at);
        else if (entry.kind === 'file' && st.isFile() && st.size === 0) unlinkSync(at);
      } catch {
        /* not empty (the process wrote into it), busy, already gone or no longer a directory on the way: keep */
      }
    }
    c.created.length = 0;
    // mtime only, to the nanosecond (Node's utimes goes through a double: ~µs), one `touch` for
    // all parents with the same mtime, and none where it is already right (vlab-init restores
    // them itself). atime is not part of a layer. touch gets each parent as its fd's /proc link
    // (followed, no -h: the link leads to that very directory, whatever its path shows now).
    const byTime = new Map<string, string[]>();
    for (const [dir, [, mtime]] of c.parents) {
      const parts = partsInRoot(c.root, dir);
      if (!parts) continue;
      let fd: number;
      try {
        fd = dirs.dirOrErrno(parts);
      } catch {
        continue; // gone, or no longer a directory on the way
      }
      if (times(fd)[1] === mtime) continue;
      byTime.set(mtime, [...(byTime.get(mtime) ?? []), `/proc/${process.pid}/fd/${fd}`]);
    }
    await Promise.all(
      [...byTime].map(([mtime, fds]) =>
        run('touch', ['-c', '-m', '-d', `@${mtime}`, ...fds], { timeout: 10_000 }).catch(() => {}),
      ),
    );
    c.parents.clear();
  } finally {
    dirs.close();
  }
}

/** The components of `p` under `root` ([] for root itself), undefined when it is not under root. */
function partsInRoot(root: string, p: string): string[] | undefined {
  const rel = path.relative(root, p);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
  return rel ? rel.split(path.sep) : [];
}

function lstatOrUndef(p: string | Buffer) {
  try {
    return lstatSync(p, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/** atime and mtime of `p` (a path, lstat'ed) or of the directory open as fd `p`. */
function times(p: string | number): [string, string] {
  const st: BigIntStats = typeof p === 'number' ? fstatSync(p, { bigint: true }) : lstatSync(p, { bigint: true });
  const fmt = (ns: bigint) => `${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`;
  return [fmt(st.atimeNs), fmt(st.mtimeNs)];
}
