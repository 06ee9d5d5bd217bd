/**
 * Directories under a root opened with no symlink on the way: each component is opened with
 * O_NOFOLLOW|O_DIRECTORY relative to its parent's fd (through /proc/self/fd/N/name, which is
 * openat(N, name) for Node, that has no openat). The fd then names the directory itself, whatever
 * a path to it would resolve to later. Layer apply uses it for every metadata change it defers.
 */
import * as fs from 'node:fs';
import { VlabError } from '@vlab/errors';
import { hostPath } from './fsname.ts';

const {
  O_RDONLY,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_CLOEXEC = 0o2000000,
} = fs.constants as typeof fs.constants & { O_CLOEXEC?: number };
const FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

/** Path of `name` inside the directory open as `fd`, resolved from that fd (never from a path). */
export function atFd(fd: number, name: string): string {
  return `/proc/self/fd/${fd}/${name}`;
}

/**
 * The fd of directory `name` (one component) in the directory open as `parent`: O_NOFOLLOW,
 * so a symlink there is ELOOP, a non-directory ENOTDIR (errors thrown as they are).
 */
export function openDirAt(parent: number, name: string): number {
  return fs.openSync(hostPath(atFd(parent, name)), FLAGS);
}

/**
 * Opens directories by their components under `root`; keeps the last `keep` open, as a walk (or
 * a COPY resolving many paths in the same directories) reuses parents: each directory is opened
 * once from its parent's fd. A kept fd still names the directory that was inside `root` when it
 * was opened, whatever a writer renames or swaps since. `root` itself is opened O_NOFOLLOW: pass
 * `root + '/.'` to enter a root that is a link.
 */
export class InRootDirs {
  private readonly rootFd: number;
  private readonly open = new Map<string, number>(); // rel path -> fd, in use order
  constructor(
    root: string,
    private readonly keep = 64,
  ) {
    this.rootFd = fs.openSync(hostPath(root), FLAGS);
  }

  /**
   * The fd of directory `parts` (components, none '' / '.' / '..'). Throws E_LAYER_UNSAFE when a
   * component is a symlink or not a directory: the caller's record no longer names what it did.
   * The fd stays owned by this object (valid until close() or until `keep` other dirs are opened).
   */
  dir(parts: readonly string[]): number {
    return this.openParts(parts, layerUnsafe);
  }

  /** As dir(), but errno errors thrown as openDirAt throws them (ELOOP, ENOTDIR, ENOENT). */
  dirOrErrno(parts: readonly string[]): number {
    return this.openParts(parts, (e) => {
      throw e;
    });
  }

  private openParts(parts: readonly string[], fail: (e: unknown, rel: string) => never): number {
    if (!parts.length) return this.rootFd;
    const rel = parts.join('/');
    const hit = this.open.get(rel);
    if (hit !== undefined) {
      this.open.delete(rel);
      this.open.set(rel, hit);
      return hit;
    }
    const parent = this.openParts(parts.slice(0, -1), fail);
    let fd: number;
    try {
      fd = openDirAt(parent, parts[parts.length - 1]);
    } catch (e) {
      fail(e, rel);
    }
    this.open.set(rel, fd);
    if (this.open.size > this.keep) {
      const [oldRel, oldFd] = this.open.entries().next().value as [string, number];
      this.open.delete(oldRel);
      fs.closeSync(oldFd);
    }
    return fd;
  }

  close(): void {
    for (const fd of this.open.values()) fs.closeSync(fd);
    this.open.clear();
    fs.closeSync(this.rootFd);
  }
}

function layerUnsafe(e: unknown, rel: string): never {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ELOOP' || code === 'ENOTDIR' || code === 'ENOENT') {
    throw new VlabError(
      'E_LAYER_UNSAFE',
      `refusing to write through ${JSON.stringify(rel)}: it is no longer a directory of the layer (${code})`,
      { details: { name: rel } },
    );
  }
  throw e;
}

/** `/proc/self/fd/FD/NAME` as bytes: NAME from a readdir, not UTF-8 maybe. */
const atFdBytes = (fd: number, name: Buffer) => Buffer.concat([Buffer.from(`/proc/self/fd/${fd}/`), name]);

/**
 * rm -rf of `name` in the directory open as `dirFd`, every directory below opened O_NOFOLLOW
 * from its parent's fd: a directory swapped for a link to a host one meanwhile is never walked.
 */
export function removeAt(dirFd: number, name: string | Buffer): void {
  const at = typeof name === 'string' ? hostPath(atFd(dirFd, name)) : atFdBytes(dirFd, name);
  const st = fs.lstatSync(at, { throwIfNoEntry: false });
  if (!st) return;
  if (!st.isDirectory()) {
    fs.unlinkSync(at);
    return;
  }
  const fd = fs.openSync(at, FLAGS);
  try {
    for (const n of fs.readdirSync(atFd(fd, '.'), { encoding: 'buffer' })) removeAt(fd, n);
  } finally {
    fs.closeSync(fd);
  }
  fs.rmdirSync(at);
}
