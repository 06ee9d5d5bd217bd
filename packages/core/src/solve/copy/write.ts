/**
 * COPY's mounted output: a plan written into a mounted rootfs, whose snapshot diff is the layer.
 * Every entry gets exactly the plan's metadata (directory mtimes last, after their children were
 * written), so the diff holds the bytes the pack output writes.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { changedError, hostPath, openSameSync, readAllSync, type FileIdentity } from '@vlab/overlay';
import { mkdirInRoot, resolveInRoot } from '../../fsutil/in-root.ts';
import { extractArchive } from '../ops/add.ts';
import type { CopyPlan } from './plan.ts';

/** Files above this size are copied by the kernel asynchronously (copy_file_range/reflink). */
const BIG_FILE = 1 << 20;
const BATCH = 128;
const breathe = () => new Promise<void>((r) => setImmediate(r));
/** One read buffer for every small file copied. */
const smallBuf = Buffer.allocUnsafe(BIG_FILE);

/**
 * Copies the file a walk saw at `src` (opened as that very file: open-same.ts, else
 * E_CONTEXT_CHANGED) to the new host path `at`. A big one is copied by the kernel through its
 * fd's /proc/self/fd link (the open file itself, whatever the name is now).
 */
async function copySame(src: string, want: FileIdentity, at: string | Buffer, name: string): Promise<void> {
  const { fd } = openSameSync(src, want, name);
  try {
    if (want.size <= BIG_FILE) {
      readAllSync(fd, smallBuf, 0, want.size, name);
      fs.writeFileSync(at, smallBuf.subarray(0, want.size), { flag: 'wx', mode: 0o600 });
      return;
    }
    await fsp.copyFile(`/proc/self/fd/${fd}`, at, fs.constants.COPYFILE_EXCL);
    if (fs.lstatSync(at).size !== want.size) throw changedError(name); // it grew or shrank meanwhile
  } finally {
    fs.closeSync(fd);
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
 * Write `plan` into `rootfs`. Entries come parents first and every parent is an entry, so each
 * path is built from host dirs this writer made or checked to be real dirs: no symlink of the
 * image is followed (the plan resolved the destination's own links already). Small files and
 * metadata use synchronous calls in batches: for thousands of small files the thread-pool round
 * trip of each async call costs more than the call itself. Archives are unpacked last.
 */
export async function writeCopyInto(rootfs: string, plan: CopyPlan): Promise<void> {
  const hostDirs = new Map<string, string>([['', rootfs]]);
  const hostOf = async (p: string): Promise<string> => {
    const parent = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '';
    const dir = hostDirs.get(parent) ?? (await resolveInRoot(rootfs, parent));
    return path.join(dir, path.posix.basename(p));
  };
  const dirs: { host: string | Buffer; mtime: number }[] = [];
  let n = 0;
  for (const e of plan.entries) {
    if (++n % BATCH === 0) await breathe();
    if (e.unchanged) {
      hostDirs.set(e.path, await hostOf(e.path));
      continue;
    }
    const host = await hostOf(e.path);
    const at = hostPath(host); // a name that is not UTF-8: its bytes
    const existing = lstatOrUndefined(at);
    if (e.type === 'dir') {
      if (existing && !existing.isDirectory()) fs.rmSync(at, { recursive: true, force: true });
      if (!existing?.isDirectory()) fs.mkdirSync(at);
      hostDirs.set(e.path, host);
      fs.chownSync(at, e.uid, e.gid);
      fs.chmodSync(at, e.mode);
      dirs.push({ host: at, mtime: e.mtime });
      continue;
    }
    if (existing) fs.rmSync(at, { recursive: true, force: true });
    if (e.type === 'symlink') {
      fs.symlinkSync(hostPath(e.linkname), at);
      fs.lchownSync(at, e.uid, e.gid);
      fs.lutimesSync(at, e.mtime, e.mtime);
    } else if (e.type === 'link') {
      fs.linkSync(hostPath(await hostOf(e.linkname)), at);
    } else {
      if (e.srcStat) await copySame(e.source!, e.srcStat, at, e.path);
      else if (e.size > BIG_FILE) await fsp.copyFile(hostPath(e.source!), at);
      else fs.copyFileSync(hostPath(e.source!), at);
      // chown before chmod: chown clears setuid/setgid bits
      fs.chownSync(at, e.uid, e.gid);
      fs.chmodSync(at, e.mode);
      fs.utimesSync(at, e.mtime, e.mtime);
    }
  }
  for (const x of plan.extracts)
    await extractArchive(x.archive, x.format, await mkdirInRoot(rootfs, x.dest), {
      want: x.srcStat,
      name: path.basename(x.archive),
    });
  // Directory mtimes last, deepest first: writing their children changed them.
  for (const { host, mtime } of dirs.reverse()) fs.utimesSync(host, mtime, mtime);
}
