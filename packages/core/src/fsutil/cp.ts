/**
 * `cp` between the host and a container's root (docker cp's rules), never through a symlink of
 * the container: its paths are resolved in-root (resolveInRoot: an absolute link target is
 * relative to the root), then every directory is opened component by component with O_NOFOLLOW
 * (overlay's InRootDirs) and every entry is read or made relative to its parent's fd. A link the
 * container swaps in meanwhile makes the copy fail (E_LAYER_UNSAFE), it never reaches the host.
 * Symlinks found inside are copied as symlinks, never followed (docker cp without -L).
 * The host side is the trusted user's: plain paths.
 */
import * as fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { VlabError, type ErrorCode } from '@vlab/errors';
import { InRootDirs, atFd } from '@vlab/overlay';
import { resolveInRoot } from './in-root.ts';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY } = fs.constants;

function cpError(code: ErrorCode, message: string, p: string): VlabError {
  return new VlabError(code, message, { details: { path: p } });
}

/** Host path `p` under `root` → its components (p was made by resolveInRoot, so it is under root). */
function partsOf(root: string, p: string): string[] {
  const rel = path.relative(root, p);
  return rel ? rel.split(path.sep) : [];
}

/**
 * lstat of the entry `parts` under the root of `dirs`, its parent opened in-root (the root itself
 * fstat'ed: it may be given as /proc/PID/root, a magic link); undefined when it, or a directory on
 * the way, is not there now (a directory swapped for a link meanwhile is not followed).
 */
function lstatIn(dirs: InRootDirs, parts: string[]): fs.Stats | undefined {
  if (!parts.length) return fs.fstatSync(dirs.dir([]));
  let pfd: number;
  try {
    pfd = dirs.dirOrErrno(parts.slice(0, -1));
  } catch (e) {
    if (['ENOENT', 'ENOTDIR', 'ELOOP'].includes((e as NodeJS.ErrnoException).code!)) return undefined;
    throw e;
  }
  return lstatAt(pfd, parts[parts.length - 1]!);
}

/** `src` ends with `/.`: its contents are copied, not the directory itself (docker cp). */
const contentsOnly = (p: string) => /\/\.$/.test(p) || p === '.';

/**
 * Copies container path `src` (in `root`, the container's mounted rootfs) to host path `dest`.
 * E_CP_NOT_FOUND for a missing source, E_CP_DEST for a destination docker cp refuses.
 */
export async function copyFromContainer(root: string, src: string, dest: string): Promise<void> {
  root = path.resolve(root);
  const parentHost = await resolveInRoot(root, path.posix.dirname(path.posix.resolve('/', src)));
  const name = path.posix.basename(path.posix.resolve('/', src));
  const dirs = new InRootDirs(root + '/.'); // '/.': a root given as /proc/PID/root is entered, not refused as a link
  try {
    if (!lstatIn(dirs, partsOf(root, parentHost))?.isDirectory())
      throw cpError('E_CP_NOT_FOUND', `no such file or directory in the container: ${src}`, src);
    const parts = partsOf(root, parentHost);
    const pfd = dirs.dir(parts);
    const st = name ? lstatAt(pfd, name) : fs.fstatSync(pfd);
    if (!st) throw cpError('E_CP_NOT_FOUND', `no such file or directory in the container: ${src}`, src);
    const destSt = fs.statSync(dest, { throwIfNoEntry: false });
    if (!st.isDirectory()) {
      const target = destSt?.isDirectory() ? path.join(dest, name) : dest;
      if (!destSt && /\/$/.test(dest)) throw cpError('E_CP_DEST', `destination directory ${dest} does not exist`, dest);
      await copyEntryOut(pfd, name, st, target);
      return;
    }
    if (destSt && !destSt.isDirectory()) throw cpError('E_CP_DEST', `cannot copy a directory to a file: ${dest}`, dest);
    const srcParts = name ? [...parts, name] : parts;
    const target = destSt && !contentsOnly(src) ? path.join(dest, name || path.basename(root)) : dest;
    await copyTreeOut(dirs, srcParts, st, target);
  } finally {
    dirs.close();
  }
}

function lstatAt(dirFd: number, name: string): fs.Stats | undefined {
  return fs.lstatSync(atFd(dirFd, name), { throwIfNoEntry: false });
}

async function copyTreeOut(dirs: InRootDirs, parts: string[], st: fs.Stats, target: string): Promise<void> {
  fs.mkdirSync(target, { recursive: true });
  const fd = dirs.dir(parts);
  for (const name of fs.readdirSync(atFd(fd, '.')).sort()) {
    const dfd = dirs.dir(parts); // the cache may have closed it while a subtree was walked
    const cst = lstatAt(dfd, name);
    if (!cst) continue; // removed meanwhile
    if (cst.isDirectory()) await copyTreeOut(dirs, [...parts, name], cst, path.join(target, name));
    else await copyEntryOut(dfd, name, cst, path.join(target, name));
  }
  fs.chmodSync(target, st.mode & 0o7777);
  fs.utimesSync(target, st.atime, st.mtime);
}

async function copyEntryOut(dirFd: number, name: string, st: fs.Stats, target: string): Promise<void> {
  if (st.isSymbolicLink()) {
    const link = fs.readlinkSync(atFd(dirFd, name));
    fs.rmSync(target, { force: true });
    fs.symlinkSync(link, target);
    return;
  }
  if (!st.isFile()) return; // devices, fifos, sockets: docker cp archives them; not copied here
  // O_NOFOLLOW|O_NONBLOCK: a link or a fifo swapped in is not opened; the inode is checked
  const fd = fs.openSync(atFd(dirFd, name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  const now = fs.fstatSync(fd);
  if (!now.isFile() || now.ino !== st.ino) {
    fs.closeSync(fd);
    throw new VlabError('E_LAYER_UNSAFE', `${name} changed while it was copied`, { details: { name } });
  }
  await pipeline(fs.createReadStream('', { fd }), fs.createWriteStream(target, { mode: st.mode & 0o777 }));
  fs.chmodSync(target, st.mode & 0o7777);
  fs.utimesSync(target, st.atime, st.mtime);
}

/**
 * Copies host path `src` into container path `dest` (in `root`). Files are made with the
 * source's mode and times and owned by the container's root (docker cp without -a). An existing
 * non-directory at a target is replaced (a symlink is replaced, not followed).
 */
export async function copyToContainer(root: string, src: string, dest: string): Promise<void> {
  root = path.resolve(root);
  const st = fs.lstatSync(src, { throwIfNoEntry: false });
  if (!st) throw cpError('E_CP_NOT_FOUND', `no such file or directory: ${src}`, src);
  const destAbs = path.posix.resolve('/', dest);
  const resolved = await resolveInRoot(root, destAbs);
  const dirs = new InRootDirs(root + '/.');
  try {
    const destSt = lstatIn(dirs, partsOf(root, resolved));
    let parentParts: string[];
    let name: string;
    if (destSt?.isDirectory() && !(st.isDirectory() && contentsOnly(src))) {
      parentParts = partsOf(root, resolved);
      name = path.basename(src);
    } else if (destSt?.isDirectory()) {
      // `src/.` into an existing dir: its contents
      await copyTreeIn(dirs, partsOf(root, resolved), src);
      return;
    } else {
      if (/\/$/.test(dest)) throw cpError('E_CP_DEST', `destination directory ${dest} does not exist`, dest);
      parentParts = partsOf(root, path.dirname(resolved));
      name = path.basename(resolved);
      const pst = lstatIn(dirs, parentParts);
      if (!pst?.isDirectory())
        throw cpError('E_CP_DEST', `the parent of ${dest} is not a directory in the container`, dest);
      if (destSt && st.isDirectory()) throw cpError('E_CP_DEST', `cannot copy a directory to a file: ${dest}`, dest);
    }
    await copyIn(dirs, parentParts, name, src, st);
  } finally {
    dirs.close();
  }
}

async function copyIn(dirs: InRootDirs, parentParts: string[], name: string, src: string, st: fs.Stats) {
  const at = () => atFd(dirs.dir(parentParts), name);
  const existing = fs.lstatSync(at(), { throwIfNoEntry: false });
  if (st.isDirectory()) {
    if (existing && !existing.isDirectory()) fs.unlinkSync(at());
    if (!existing?.isDirectory()) fs.mkdirSync(at(), { mode: 0o700 });
    await copyTreeIn(dirs, [...parentParts, name], src);
    const fd = dirs.dir([...parentParts, name]);
    fs.fchmodSync(fd, st.mode & 0o7777);
    fs.fchownSync(fd, 0, 0);
    return;
  }
  if (existing?.isDirectory())
    throw cpError('E_CP_DEST', `cannot overwrite directory ${name} with a non-directory`, name);
  if (existing) fs.unlinkSync(at());
  if (st.isSymbolicLink()) {
    fs.symlinkSync(fs.readlinkSync(src), at());
    fs.lchownSync(at(), 0, 0);
    return;
  }
  if (!st.isFile()) return; // host devices, fifos, sockets are not copied
  // made O_EXCL|O_NOFOLLOW and set through this fd: whatever the container swaps in at the name gets nothing
  const fd = fs.openSync(at(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    // the kernel copies into this fd's /proc link: no stream is lent the fd (one that fails
    // closes it too, later, maybe when its number names another file)
    await fsp.copyFile(src, `/proc/self/fd/${fd}`);
    fs.fchownSync(fd, 0, 0);
    fs.fchmodSync(fd, st.mode & 0o7777);
    fs.futimesSync(fd, st.atime, st.mtime);
  } finally {
    fs.closeSync(fd);
  }
}

async function copyTreeIn(dirs: InRootDirs, parts: string[], src: string): Promise<void> {
  for (const name of fs.readdirSync(src).sort()) {
    const s = path.join(src, name);
    await copyIn(dirs, parts, name, s, fs.lstatSync(s));
  }
}
