/**
 * `--output type=local,dest=DIR`: the image's filesystem copied into DIR the way BuildKit's local
 * exporter leaves it on the client: every file owned by the user running the export, no device
 * nodes, fifos or sockets, setuid/setgid bits cleared. (`cp -a` as root recreated setuid-root
 * binaries and device nodes on the host.) Nothing is followed through a symlink, even if DIR
 * changes while we write: each destination directory is held open (O_DIRECTORY|O_NOFOLLOW) and
 * everything in it is made through that descriptor (/proc/self/fd/N/name, so only the last
 * component is resolved, never followed), its mode and times are set with fchmod/futimes. An
 * entry already in DIR that is in the way (a symlink where the image has a directory, say) is
 * replaced, never written through, and files are created with O_EXCL.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { VlabError } from '@vlab/errors';

/** Mode bits kept on the host: permissions and sticky, not setuid/setgid. */
const KEPT_MODE = 0o1777;
const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_WRONLY, O_CREAT, O_EXCL } = fs.constants;

export async function exportLocal(rootfs: string, dest: string): Promise<void> {
  let dir: fsp.FileHandle;
  try {
    await fsp.mkdir(dest, { recursive: true });
    // DEST itself is the user's choice: a symlink to a directory there is followed, as docker does.
    dir = await fsp.open(dest, O_RDONLY | O_DIRECTORY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const inTheWay = await fsp.lstat(dest).then(
      (st) => !st.isDirectory(),
      () => false,
    );
    if (inTheWay || code === 'EEXIST' || code === 'ENOTDIR') {
      throw new VlabError(
        'E_OUTPUT',
        `--output type=local,dest=${dest}: ${dest} exists and is not a directory (or is a dangling symlink); remove it or choose another dest`,
      );
    }
    throw new VlabError('E_OUTPUT', `--output type=local,dest=${dest}: ${(e as Error).message}`, { cause: e });
  }
  try {
    await copyDir(rootfs, dir);
  } finally {
    await dir.close();
  }
}

/** `name` inside the directory held open by `dir`: only `name` itself is looked up. */
function at(dir: fsp.FileHandle, name: string): string {
  return `/proc/self/fd/${dir.fd}/${name}`;
}

/** Copy the children of `src` into the open directory `dst`. */
async function copyDir(src: string, dst: fsp.FileHandle): Promise<void> {
  for (const name of (await fsp.readdir(src)).sort()) {
    const from = path.join(src, name);
    const to = at(dst, name);
    const st = await fsp.lstat(from);
    if (st.isDirectory()) {
      const sub = await openDirIn(dst, name);
      try {
        await copyDir(from, sub);
        await sub.chmod(st.mode & KEPT_MODE);
        await sub.utimes(st.atime, st.mtime);
      } finally {
        await sub.close();
      }
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

/** Open (making it if needed) the real directory `name` in `parent`; anything else there is replaced. */
async function openDirIn(parent: fsp.FileHandle, name: string): Promise<fsp.FileHandle> {
  const p = at(parent, name);
  for (let tries = 0; ; tries++) {
    try {
      return await fsp.open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (tries >= 3 || (code !== 'ENOENT' && code !== 'ENOTDIR' && code !== 'ELOOP')) throw e;
      if (code !== 'ENOENT') await fsp.rm(p, { recursive: true, force: true });
      await fsp.mkdir(p, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
    }
  }
}

async function copyFile(from: string, to: string, st: fs.Stats): Promise<void> {
  const out = await fsp.open(to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    await out.chmod(st.mode & KEPT_MODE);
    for await (const chunk of fs.createReadStream(from)) await out.write(chunk as Buffer);
    await out.utimes(st.atime, st.mtime);
  } finally {
    await out.close();
  }
}
