/**
 * `--output type=local,dest=DIR`: the image's filesystem copied into DIR the way BuildKit's local
 * exporter leaves it on the client: every file owned by the user running the export, no device
 * nodes, fifos or sockets, setuid/setgid bits cleared. (`cp -a` as root recreated setuid-root
 * binaries and device nodes on the host.) Nothing is followed through a symlink: an entry already
 * in DIR that is in the way (a symlink where the image has a directory, say) is replaced, never
 * written through, and files are created with O_EXCL, so a link cannot redirect them.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';

/** Mode bits kept on the host: permissions and sticky, not setuid/setgid. */
const KEPT_MODE = 0o1777;

export async function exportLocal(rootfs: string, dest: string): Promise<void> {
  await fsp.mkdir(dest, { recursive: true });
  await copyDir(rootfs, dest);
}

async function lstatOrUndefined(p: string): Promise<fs.Stats | undefined> {
  return fsp.lstat(p).catch(() => undefined);
}

/** Copy the children of `src` into `dst`, a real directory (checked by the caller). */
async function copyDir(src: string, dst: string): Promise<void> {
  for (const name of (await fsp.readdir(src)).sort()) {
    const from = path.join(src, name);
    const to = path.join(dst, name);
    const st = await fsp.lstat(from);
    if (st.isDirectory()) {
      const existing = await lstatOrUndefined(to);
      if (existing && !existing.isDirectory()) await fsp.rm(to, { recursive: true, force: true });
      if (!existing?.isDirectory()) await fsp.mkdir(to, { mode: 0o700 });
      await copyDir(from, to);
      await fsp.chmod(to, st.mode & KEPT_MODE);
      await fsp.utimes(to, st.atime, st.mtime);
    } else if (st.isFile() || st.isSymbolicLink()) {
      await fsp.rm(to, { recursive: true, force: true });
      if (st.isSymbolicLink()) {
        await fsp.symlink(await fsp.readlink(from), to);
        await fsp.lutimes(to, st.atime, st.mtime);
      } else {
        await copyFile(from, to, st);
      }
    }
    // Character and block devices, fifos and sockets are not exported (BuildKit's local exporter
    // does not create them on the client either).
  }
}

async function copyFile(from: string, to: string, st: fs.Stats): Promise<void> {
  const out = await fsp.open(to, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  await out.chmod(st.mode & KEPT_MODE).catch(async (e) => {
    await out.close();
    throw e;
  });
  await pipeline(fs.createReadStream(from), out.createWriteStream()); // closes `out`
  await fsp.lutimes(to, st.atime, st.mtime);
}
