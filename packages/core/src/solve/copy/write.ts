/**
 * COPY's mounted output: a plan written into a mounted rootfs, whose snapshot diff is the layer.
 * Every entry gets exactly the plan's metadata (directory mtimes last, after their children were
 * written), so the diff holds the bytes the pack output writes.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { InRootDirs, atFd, changedError, hostPath, openSameSync, readAllSync, removeAt } from '@vlab/overlay';
import { mkdirInRoot, partsIn, resolveInRoot } from '../../fsutil/in-root.ts';
import { extractArchive } from '../ops/add.ts';
import type { CopyPlan, PlanEntry } from './plan.ts';

/** Files above this size are copied by the kernel asynchronously (copy_file_range/reflink). */
const BIG_FILE = 1 << 20;
const BATCH = 128;
const breathe = () => new Promise<void>((r) => setImmediate(r));
/** One read buffer for every small file copied. */
const smallBuf = Buffer.allocUnsafe(BIG_FILE);

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_DIRECTORY } = fs.constants;

/**
 * Writes the file of `e` as the new entry `at` (a name in a directory opened in-root: its
 * /proc/self/fd path), created O_EXCL|O_NOFOLLOW and given its owner, mode and times through its
 * own fd: whatever is swapped in at that name meanwhile gets nothing. A source the walk saw
 * (`srcStat`) is opened as that very file (open-same.ts, else E_CONTEXT_CHANGED); a big one is
 * copied by the kernel from its fd's /proc/self/fd link to the new file's.
 */
async function writeFile(e: PlanEntry, at: string | Buffer): Promise<void> {
  const src = e.srcStat ? openSameSync(e.source!, e.srcStat, e.path).fd : fs.openSync(hostPath(e.source!), O_RDONLY);
  try {
    const size = e.srcStat ? e.srcStat.size : fs.fstatSync(src).size;
    const out = fs.openSync(at, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    try {
      if (e.srcStat && size <= BIG_FILE) {
        readAllSync(src, smallBuf, 0, size, e.path);
        for (let n = 0; n < size;) n += fs.writeSync(out, smallBuf, n, size - n, n);
      } else {
        const from = `/proc/self/fd/${src}`;
        const to = `/proc/self/fd/${out}`;
        if (size > BIG_FILE) await fsp.copyFile(from, to);
        else fs.copyFileSync(from, to);
        if (e.srcStat && fs.fstatSync(out).size !== size) throw changedError(e.path); // it grew or shrank meanwhile
      }
      // chown before chmod: chown clears setuid/setgid bits
      fs.fchownSync(out, e.uid, e.gid);
      fs.fchmodSync(out, e.mode);
      fs.futimesSync(out, e.mtime, e.mtime);
    } finally {
      fs.closeSync(out);
    }
  } finally {
    fs.closeSync(src);
  }
}

function lstatOrUndefined(p: string | Buffer): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch {
    return undefined;
  }
}

/**
 * Write `plan` into `rootfs`. Entries come parents first and every parent is an entry; the plan
 * resolved the destination's own links already. Every entry is made relative to its parent
 * directory's fd, every directory opened O_NOFOLLOW|O_DIRECTORY from its parent's (overlay's
 * InRootDirs), and metadata is set through the entry's own fd (a symlink's by l-calls on its
 * name in that parent): a directory swapped for a symlink to a host directory meanwhile (a
 * concurrent writer of the tree) is E_LAYER_UNSAFE, no write follows it. Small files and
 * metadata use synchronous calls in batches: for thousands of small files the thread-pool round
 * trip of each async call costs more than the call itself. Archives are unpacked last.
 */
export async function writeCopyInto(rootfs: string, plan: CopyPlan): Promise<void> {
  const root = path.resolve(rootfs);
  const inRoot = new InRootDirs(root + '/.', 128); // '/.': a root that is a link is entered
  try {
    await writeEntries(root, inRoot, plan);
  } finally {
    inRoot.close();
  }
}

async function writeEntries(root: string, inRoot: InRootDirs, plan: CopyPlan): Promise<void> {
  const dirParts = new Map<string, string[]>([['', []]]); // plan dir -> its components under root
  /** The components of `p`'s parent dir under root, and `p`'s name. */
  const place = async (p: string): Promise<[string[], string]> => {
    const parent = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '';
    const parts = dirParts.get(parent) ?? partsIn(root, await resolveInRoot(root, parent));
    return [parts, path.posix.basename(p)];
  };
  /** `name` in directory `parts`, opened now (E_LAYER_UNSAFE if it is no longer one): a name that is not UTF-8 as its bytes. */
  const at = (parts: string[], name: string) => hostPath(atFd(inRoot.dir(parts), name));
  const dirs: { parts: string[]; mtime: number }[] = [];
  let n = 0;
  for (const e of plan.entries) {
    if (++n % BATCH === 0) await breathe();
    const [parts, name] = await place(e.path);
    if (e.unchanged) {
      dirParts.set(e.path, [...parts, name]);
      continue;
    }
    const existing = lstatOrUndefined(at(parts, name));
    if (e.type === 'dir') {
      if (existing && !existing.isDirectory()) removeAt(inRoot.dir(parts), name);
      if (!existing?.isDirectory()) fs.mkdirSync(at(parts, name));
      const own = [...parts, name];
      dirParts.set(e.path, own);
      const fd = inRoot.dir(own); // O_NOFOLLOW: a link swapped in is E_LAYER_UNSAFE
      fs.fchownSync(fd, e.uid, e.gid);
      fs.fchmodSync(fd, e.mode);
      dirs.push({ parts: own, mtime: e.mtime });
      continue;
    }
    if (existing) removeAt(inRoot.dir(parts), name);
    if (e.type === 'symlink') {
      const p = at(parts, name);
      fs.symlinkSync(hostPath(e.linkname), p);
      fs.lchownSync(p, e.uid, e.gid);
      fs.lutimesSync(p, e.mtime, e.mtime);
    } else if (e.type === 'link') {
      const [tParts, tName] = await place(e.linkname);
      const target = at(tParts, tName);
      fs.linkSync(target, at(parts, name)); // link(2) does not follow a symlink at `target`
    } else {
      await writeFile(e, at(parts, name));
    }
  }
  for (const x of plan.extracts) {
    // unpacked into the destination pinned by an fd of its own (made and opened in-root), every
    // entry relative to its parent's fd: a dir swapped for a link meanwhile gets nothing
    const dest = partsIn(root, await mkdirInRoot(root, x.dest, undefined, undefined, inRoot));
    const fd = fs.openSync(atFd(inRoot.dir(dest), '.'), O_RDONLY | O_DIRECTORY);
    try {
      // /proc/PID: the same directory for the helper processes the deferred nodes may go through
      const pinned = `/proc/${process.pid}/fd/${fd}`;
      await extractArchive(x.archive, x.format, pinned, { want: x.srcStat, name: path.basename(x.archive) }, true);
    } finally {
      fs.closeSync(fd);
    }
  }
  // Directory mtimes last, deepest first: writing their children changed them.
  // One an archive replaced (a link, a file, gone) is skipped: no longer the plan's directory.
  for (const { parts, mtime } of dirs.reverse()) {
    let fd: number;
    try {
      fd = inRoot.dirOrErrno(parts);
    } catch (e) {
      if (['ELOOP', 'ENOTDIR', 'ENOENT'].includes((e as NodeJS.ErrnoException).code!)) continue;
      throw e;
    }
    fs.futimesSync(fd, mtime, mtime);
  }
}
