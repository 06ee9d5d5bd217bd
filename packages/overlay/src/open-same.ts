/**
 * Opening a file that was lstat'ed earlier (a walk) as that very file. Between the walk and the
 * read a concurrent writer may swap the name for a symlink to a host file, a FIFO (the read would
 * wait forever) or a device (endless): O_NOFOLLOW refuses the link, O_NONBLOCK keeps a FIFO from
 * blocking the open, and the fstat must show the regular file walked (same device, inode, size).
 * The read then uses only this fd, at most `size` bytes.
 */
import fs from 'node:fs';
import { VlabError, type ErrorCode } from '@vlab/errors';
import { hostPath, readlinkName } from './fsname.ts';
import { InRootDirs, atFd, openDirAt } from './in-root.ts';

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY, O_DIRECTORY } = fs.constants;
/** libuv adds O_CLOEXEC to every open. */
const FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;

/** What a walk saw of a file: the read must find the same one. */
export interface FileIdentity {
  dev: number;
  ino: number;
  size: number;
}

/** The error for a file that is no longer what the walk saw. */
export function changedError(name: string, code: ErrorCode = 'E_CONTEXT_CHANGED'): VlabError {
  return new VlabError(code, `${name} changed while the build read it (replaced, grown or shrunk): build again`, {
    details: { path: name },
  });
}

/** Open errors that mean the file is no longer the one walked (changedError); others are rethrown. */
const CHANGED_ERRNOS = new Set(['ELOOP', 'ENOENT', 'ENOTDIR', 'ENXIO']);

/**
 * An fd on `file` (a host path, escaped names as their bytes: fsname.ts) and its fstat, when it is
 * the regular file `want` describes; else `changedError(name, code)` (an open error that is not
 * CHANGED_ERRNOS, e.g. EMFILE, as it is). The caller closes the fd.
 */
export function openSameSync(
  file: string | Buffer,
  want: FileIdentity,
  name: string,
  code?: ErrorCode,
): { fd: number; st: fs.Stats } {
  let fd: number;
  try {
    fd = fs.openSync(typeof file === 'string' ? hostPath(file) : file, FLAGS);
  } catch (e) {
    // the file is no longer what the walk saw: ELOOP (a link swapped in), ENOENT/ENOTDIR (removed),
    // ENXIO (a socket). Anything else (EMFILE, EACCES, EIO) is that error: building again would not help.
    if (CHANGED_ERRNOS.has((e as NodeJS.ErrnoException).code!)) throw changedError(name, code);
    throw e;
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile() || st.ino !== want.ino || st.dev !== want.dev || st.size !== want.size) {
    fs.closeSync(fd);
    throw changedError(name, code);
  }
  return { fd, st };
}

/**
 * Reads exactly `size` bytes at offset 0 of `fd` into `buf` (from `at`); one more byte found, or
 * fewer, is `changedError`: the file grew or shrank since its fstat.
 */
export function readAllSync(fd: number, buf: Buffer, at: number, size: number, name: string, code?: ErrorCode): void {
  let n = 0;
  while (n < size) {
    const got = fs.readSync(fd, buf, at + n, size - n, n);
    if (!got) throw changedError(name, code);
    n += got;
  }
  if (fs.readSync(fd, oneByte, 0, 1, size) > 0) throw changedError(name, code);
}
const oneByte = Buffer.alloc(1);

/**
 * readlink of a path a walk saw as a symlink (readlinkName: its bytes kept); one replaced since
 * by a file, or removed, is `changedError` (EINVAL, ENOENT), not an internal error.
 */
export function readlinkWalked(p: string, name: string, code?: ErrorCode): string {
  try {
    return readlinkName(p);
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    if (c === 'EINVAL' || c === 'ENOENT' || c === 'ENOTDIR') throw changedError(name, code);
    throw e;
  }
}

/**
 * An fd on directory `rel` ('/'-separated, '' = `root` itself) under `root`, every component
 * opened O_NOFOLLOW|O_DIRECTORY from its parent's fd: a directory inside `root` now, whatever a
 * writer swapped in on the way (a symlink to a host directory is ENOTDIR, as Linux gives it for
 * O_DIRECTORY|O_NOFOLLOW; errors are thrown as they are). `root` itself is followed: the user named it. The caller closes the fd.
 */
export function openDirInRoot(root: string, rel: string): number {
  let fd = fs.openSync(hostPath(root), O_RDONLY | O_DIRECTORY);
  for (const name of rel.split('/')) {
    if (!name || name === '.') continue;
    try {
      const next = openDirAt(fd, name);
      fs.closeSync(fd);
      fd = next;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }
  return fd;
}

const isMissing = (e: unknown) => ['ENOENT', 'ENOTDIR'].includes((e as NodeJS.ErrnoException).code!);
const split = (rel: string) => {
  const at = rel.lastIndexOf('/');
  return [at < 0 ? '' : rel.slice(0, at), rel.slice(at + 1)] as const;
};
/**
 * InRootDirs (one fd per directory, opened once from its parent's) of `root` with paths as
 * strings and errno errors, for lstatInRoot / readlinkInRoot / resolveInRoot: resolving a path
 * lstats every prefix of it, so opening the chain from the root for each lstat cost O(depth²)
 * opens per path. `root` itself is followed: the user named it.
 */
export class DirsInRoot {
  private dirs: InRootDirs | undefined; // opened at the first dir(): a missing root is then an errno error there
  constructor(
    readonly root: string,
    private readonly keep = 64,
  ) {}

  /** The fd of directory `rel` ('' = `root`); owned by this object: valid until the next call or close(). */
  dir(rel: string): number {
    // `keep` fds in all, the root's among them
    this.dirs ??= new InRootDirs(this.root + '/.', Math.max(1, this.keep - 1));
    return this.dirs.dirOrErrno(rel.split('/').filter((n) => n && n !== '.'));
  }

  close(): void {
    this.dirs?.close();
    this.dirs = undefined;
  }
}

/** `fn(dirs)` with `dirs`, or with DirsInRoot of `root` made for the call and closed after it. */
function withDirs<T>(root: string, dirs: DirsInRoot | undefined, fn: (d: DirsInRoot) => T): T {
  if (dirs) return fn(dirs);
  const own = new DirsInRoot(root);
  try {
    return fn(own);
  } finally {
    own.close();
  }
}

/**
 * `fn` on the path of `rel`'s last component inside its parent directory, opened through `dirs`
 * (so the parent is inside `root` now). A component that is missing, not a directory or a
 * symlink now is what `missing` gives.
 */
function atParentInRoot<T>(
  root: string,
  rel: string,
  fn: (p: string) => T,
  missing: () => T,
  code?: ErrorCode,
  dirs?: DirsInRoot,
): T {
  const [dir, base] = split(rel);
  return withDirs(root, dirs, (d) => {
    let fd: number;
    try {
      fd = d.dir(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw changedError(rel, code);
      if (isMissing(e)) return missing();
      throw e;
    }
    return fn(atFd(fd, base));
  });
}

/**
 * lstat of `rel` (a non-empty path under `root`) as `root` holds it now (never through a symlink);
 * undefined when absent. `dirs` (of `root`) keeps the directories opened for the next call.
 */
export function lstatInRoot(root: string, rel: string, code?: ErrorCode, dirs?: DirsInRoot): fs.Stats | undefined {
  return atParentInRoot(
    root,
    rel,
    (p) => {
      try {
        return fs.lstatSync(hostPath(p));
      } catch (e) {
        if (isMissing(e)) return undefined;
        throw e;
      }
    },
    () => undefined,
    code,
    dirs,
  );
}

/** readlinkWalked of `rel` under `root`, its parent reached as lstatInRoot's: never a host link's target. */
export function readlinkInRoot(root: string, rel: string, name = rel, code?: ErrorCode, dirs?: DirsInRoot): string {
  return atParentInRoot(
    root,
    rel,
    (p) => readlinkWalked(p, name, code),
    () => {
      throw changedError(name, code);
    },
    code,
    dirs,
  );
}

/** The fstat of directory `rel` under `root` (openDirInRoot); one that is no longer a directory there is `changedError`. */
export function statDirInRoot(root: string, rel: string, name = rel || '.', code?: ErrorCode): fs.Stats {
  let fd: number;
  try {
    fd = openDirInRoot(root, rel);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP' || isMissing(e)) throw changedError(name, code);
    throw e;
  }
  try {
    return fs.fstatSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Linux's O_PATH (Node does not name it): an fd that names a file without opening it. */
const O_PATH = 0o10000000;

/**
 * An O_PATH fd on `rel` under `root` (its parent by openDirInRoot, itself O_NOFOLLOW: no open
 * side effect of a device, no FIFO wait) and its fstat, when it is a directory or a regular file
 * there now; else `changedError(name, code)`. While the fd is open, `/proc/<pid>/fd/<fd>` names
 * that very file: a mount or a copy through it reaches no other. The caller closes the fd.
 */
export function pinInRoot(
  root: string,
  rel: string,
  name = rel || '.',
  code?: ErrorCode,
): { fd: number; st: fs.Stats } {
  const fd = rel
    ? atParentInRoot(
        root,
        rel,
        (p) => {
          try {
            return fs.openSync(hostPath(p), O_PATH | O_NOFOLLOW);
          } catch (e) {
            if (isMissing(e)) throw changedError(name, code);
            throw e;
          }
        },
        () => {
          throw changedError(name, code);
        },
        code,
      )
    : fs.openSync(hostPath(root), O_PATH | O_DIRECTORY);
  const st = fs.fstatSync(fd);
  if (!st.isDirectory() && !st.isFile()) {
    fs.closeSync(fd);
    throw changedError(name, code);
  }
  return { fd, st };
}

/**
 * An fd (O_NOFOLLOW|O_NONBLOCK|O_NOCTTY: no link, no FIFO wait, no terminal) on `rel` under
 * `root`, its parent reached by openDirInRoot, and its fstat; undefined when nothing is there (or
 * a directory on the way is not one now). What it is (a regular file, its size) is the caller's
 * check, on the fstat. The caller closes the fd.
 */
export function openInRoot(root: string, rel: string): { fd: number; st: fs.Stats } | undefined {
  return atParentInRoot(
    root,
    rel,
    (p) => {
      let fd: number;
      try {
        fd = fs.openSync(hostPath(p), FLAGS);
      } catch (e) {
        if (isMissing(e) || (e as NodeJS.ErrnoException).code === 'ELOOP') return undefined; // a link is not followed
        throw e;
      }
      return { fd, st: fs.fstatSync(fd) };
    },
    () => undefined,
  );
}
