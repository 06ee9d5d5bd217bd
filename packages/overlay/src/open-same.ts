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

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY } = fs.constants;
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

/**
 * An fd on `file` (a host path, escaped names as their bytes: fsname.ts) and its fstat, when it is
 * the regular file `want` describes; else `changedError(name, code)`. The caller closes the fd.
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
  } catch {
    throw changedError(name, code); // ELOOP (a link swapped in), ENOENT (removed), ENXIO (a socket)
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
