/**
 * File helpers for paths inside a container rootfs. Hand-written on purpose: each one resolves
 * in-root (an image's symlinks are followed as the container sees them, never to the host),
 * which fs-extra's ensureDir/copy/outputFile and Node's own helpers do not; anything that needs
 * no in-root resolution uses node:fs/promises directly.
 */
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import {
  DirsInRoot,
  InRootDirs,
  atFd,
  hostPath,
  lstatInRoot,
  openInRoot,
  readAllSync,
  readlinkInRoot,
} from '@vlab/overlay';
import { closeSync, fchmodSync, fchownSync, lstatSync, mkdirSync } from 'node:fs';

/** What path resolution reads of a tree: an lstat (undefined when absent) and a readlink. */
export interface TreeLinks {
  lstat(p: string): Promise<{ isSymbolicLink(): boolean } | undefined>;
  readlink(p: string): Promise<string>;
}

/**
 * Resolve `p` (an absolute path inside a container rootfs) to the path it names inside that root
 * ('/'-rooted, no symlink left on the way), following symlinks as the container would see them:
 * absolute targets are relative to the root, `..` never climbs above it. The last component is
 * not followed when `followLast` is false; `onLink` sees each link followed (the in-root dir it
 * is in, its target). `tree` reads the root's entries by in-root path (a
 * host directory, or an image's layers read without mounting).
 */
export async function resolveIn(
  tree: TreeLinks,
  p: string,
  followLast = true,
  onLink?: (dir: string, target: string) => void,
): Promise<string> {
  const parts = path.posix.normalize(`/${p}`).split('/').filter(Boolean);
  const done: string[] = [];
  let hops = 0;
  while (parts.length) {
    const name = parts.shift()!;
    if (name === '.') continue;
    if (name === '..') {
      done.pop();
      continue;
    }
    const inRoot = `/${[...done, name].join('/')}`;
    const isLast = parts.length === 0;
    const st = await tree.lstat(inRoot);
    if (st?.isSymbolicLink() && (followLast || !isLast)) {
      if (++hops > 40) throw new VlabError('E_SYMLINK_LOOP', `too many levels of symbolic links resolving ${p}`);
      const target = await tree.readlink(inRoot);
      onLink?.(`/${done.join('/')}`, target);
      if (target.startsWith('/')) done.length = 0;
      parts.unshift(...target.split('/').filter(Boolean));
      continue;
    }
    done.push(name);
  }
  return `/${done.join('/')}`;
}

/**
 * `resolveIn` on a host directory, giving the host path under `root`. Written by hand because no
 * maintained npm package does chroot-style resolution (Go has securejoin); without it an image
 * symlink like `/app -> /etc` would make COPY write to the host. `dirs` (a DirsInRoot of `root`)
 * keeps the directories opened for the caller's next paths (a COPY's matches); else one is made
 * for this call.
 */
export async function resolveInRoot(
  root: string,
  p: string,
  followLast = true,
  onLink?: (dir: string, target: string) => void,
  dirs?: DirsInRoot,
): Promise<string> {
  root = path.resolve(root);
  if (dirs && path.resolve(dirs.root) !== root) throw new Error(`resolveInRoot: dirs of ${dirs.root}, not of ${root}`);
  // Synchronous metadata calls: a few µs each, where a thread-pool round trip costs 50-100 µs
  // (a RUN resolves a dozen paths before it starts, a COPY one per file). Each through its parent
  // opened in the root (open-same.ts DirsInRoot, every directory opened once): a directory a
  // writer swaps for a symlink meanwhile (a context, a running container's rootfs) is not
  // followed to the host; a link replaced since its lstat is E_CONTEXT_CHANGED.
  const d = dirs ?? new DirsInRoot(root);
  const tree: TreeLinks = {
    lstat: async (q) => lstatInRoot(root, q.slice(1), undefined, d),
    readlink: async (q) => readlinkInRoot(root, q.slice(1), q, undefined, d),
  };
  try {
    return path.join(root, await resolveIn(tree, p, followLast, onLink));
  } finally {
    if (!dirs) d.close();
  }
}

/** Host path `host` under `root` (both resolved: `host` made by resolveInRoot) → its components. */
export function partsIn(root: string, host: string): string[] {
  const rel = path.relative(root, host);
  return rel ? rel.split(path.sep) : [];
}

/**
 * mkdir -p inside a rootfs; created dirs get `mode` and owner. Returns the host path. A symlink
 * whose target is missing gets its target created (as Docker's WORKDIR does), target parents
 * included: the resolved path is in-root, so what is made is always under `root`. Every
 * directory is made and opened from its parent's fd (ensureDirIn): one that a concurrent writer
 * swaps for a symlink meanwhile is E_LAYER_UNSAFE, nothing is made or chmod'ed through it.
 * `dirs` (an InRootDirs of `root`) keeps the directories opened for the caller; else one is made.
 */
export async function mkdirInRoot(
  root: string,
  p: string,
  owner?: { uid: number; gid: number },
  mode = 0o755,
  dirs?: InRootDirs,
): Promise<string> {
  root = path.resolve(root);
  const parts = path.posix.normalize(`/${p}`).split('/').filter(Boolean);
  const d = dirs ?? new InRootDirs(root + '/.');
  try {
    let cur = '/';
    let host = root;
    for (const name of parts) {
      cur = path.posix.join(cur, name);
      host = await resolveInRoot(root, cur);
      ensureDirIn(d, partsIn(root, host), cur, owner, mode);
    }
    return host;
  } finally {
    if (!dirs) d.close();
  }
}

/**
 * Directory `parts` (components, no link among them: resolved) under the root of `dirs`, missing
 * ones made with `mode` and owner, each from its parent's fd and then set through its own fd. A
 * non-directory on the way is E_NOT_A_DIRECTORY (`shown` names it); a symlink (swapped in after
 * the resolution) or a parent that is no longer a directory is E_LAYER_UNSAFE. Returns its fd
 * (owned by `dirs`).
 */
export function ensureDirIn(
  dirs: InRootDirs,
  parts: readonly string[],
  shown: string,
  owner?: { uid: number; gid: number },
  mode = 0o755,
): number {
  let fd = dirs.dir([]);
  for (let i = 1; i <= parts.length; i++) {
    const sub = parts.slice(0, i);
    try {
      fd = dirs.dirOrErrno(sub);
      continue;
    } catch (e) {
      if (!['ENOENT', 'ENOTDIR', 'ELOOP'].includes((e as NodeJS.ErrnoException).code!)) throw e;
    }
    const at = hostPath(atFd(dirs.dir(sub.slice(0, -1)), sub[i - 1]!));
    const st = lstatSync(at, { throwIfNoEntry: false });
    if (st?.isSymbolicLink() || st?.isDirectory()) {
      fd = dirs.dir(sub); // a link: E_LAYER_UNSAFE (it was none when resolved); a dir made meanwhile
      continue;
    }
    if (st) throw new VlabError('E_NOT_A_DIRECTORY', `${shown} exists in the image and is not a directory`);
    try {
      mkdirSync(at, { mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; // made meanwhile: opened as any other
    }
    fd = dirs.dir(sub);
    fchmodSync(fd, mode);
    if (owner) fchownSync(fd, owner.uid, owner.gid);
  }
  return fd;
}

/** The most readInRoot reads: /etc/passwd and /etc/group of real images are a few kB. */
export const MAX_IN_ROOT_READ = 4 << 20;

/**
 * Read a small regular file under `root` (in-root resolution: a container's, or a build
 * context's); undefined when missing. Whoever made the tree chooses what sits there: a FIFO (the
 * read would wait forever), a device (endless, or a side effect on open), a huge file, a symlink
 * or a directory swapped meanwhile for one to the host. So it is opened through its parent opened
 * in-root, O_NOFOLLOW|O_NONBLOCK (open-same.ts openInRoot), and only a regular file of at most
 * `maxBytes` is read, from that fd; anything else is `refuse(why, tooBig)` (default E_IMAGE_FILE).
 */
export async function readInRoot(
  root: string,
  p: string,
  maxBytes = MAX_IN_ROOT_READ,
  refuse: (why: string, tooBig: boolean) => VlabError = (why) =>
    new VlabError('E_IMAGE_FILE', `${p} in the image ${why}: it is not read (fix the image's ${p})`, {
      details: { path: p },
    }),
): Promise<string | undefined> {
  const host = await resolveInRoot(root, p);
  const opened = openInRoot(path.resolve(root), path.relative(path.resolve(root), host));
  if (!opened) return undefined;
  const { fd, st } = opened;
  try {
    if (!st.isFile()) throw refuse('is not a regular file', false);
    if (st.size > maxBytes) throw refuse(`is larger than ${maxBytes} bytes`, true);
    const buf = Buffer.alloc(st.size);
    readAllSync(fd, buf, 0, st.size, p); // grown or shrunk since its fstat: E_CONTEXT_CHANGED
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}
