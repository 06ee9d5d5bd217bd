import fsp from 'node:fs/promises';
import path from 'node:path';
import { VlabError } from '@vlab/errors';

/**
 * Resolve `p` (an absolute path inside a container rootfs) to a host path under `root`, following
 * symlinks as the container would see them: absolute targets are relative to `root`, `..` never
 * climbs above it. Written by hand because no maintained npm package does chroot-style resolution
 * (Go has securejoin); without it an image symlink like `/app -> /etc` would make COPY write to
 * the host. The last component is not followed when `followLast` is false.
 */
export async function resolveInRoot(root: string, p: string, followLast = true): Promise<string> {
  root = path.resolve(root);
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
    const host = path.join(root, ...done, name);
    const isLast = parts.length === 0;
    const st = await fsp.lstat(host).catch(() => undefined);
    if (st?.isSymbolicLink() && (followLast || !isLast)) {
      if (++hops > 40) throw new VlabError('E_SYMLINK_LOOP', `too many levels of symbolic links resolving ${p}`);
      const target = await fsp.readlink(host);
      if (target.startsWith('/')) done.length = 0;
      parts.unshift(...target.split('/').filter(Boolean));
      continue;
    }
    done.push(name);
  }
  return path.join(root, ...done);
}

/** mkdir -p inside a rootfs; created dirs get `mode` and owner. Returns the host path. */
export async function mkdirInRoot(root: string, p: string, owner?: { uid: number; gid: number }, mode = 0o755): Promise<string> {
  const parts = path.posix.normalize(`/${p}`).split('/').filter(Boolean);
  let cur = '/';
  let host = root;
  for (const name of parts) {
    cur = path.posix.join(cur, name);
    host = await resolveInRoot(root, cur);
    const st = await fsp.stat(host).catch(() => undefined);
    if (!st) {
      await fsp.mkdir(host, { mode });
      await fsp.chmod(host, mode);
      if (owner) await fsp.chown(host, owner.uid, owner.gid);
    } else if (!st.isDirectory()) {
      throw new VlabError('E_NOT_A_DIRECTORY', `${cur} exists in the image and is not a directory`);
    }
  }
  return host;
}

/** Read a container file (in-root resolution); undefined when missing. */
export async function readInRoot(root: string, p: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(await resolveInRoot(root, p), 'utf8');
  } catch {
    return undefined;
  }
}
