/**
 * Resolving container paths on the host without leaving the root (like Go's securejoin): every
 * symlink is followed as if `rootfs` were `/`, and `..` never climbs above it. An image's
 * `/etc/resolv.conf -> /run/…` or `/etc/passwd -> /host/etc/passwd` stays inside the image.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';

/** Host path of container path `p` inside `rootfs`, symlinks resolved in-root. Missing tails are kept. */
export async function resolveInRoot(rootfs: string, p: string): Promise<string> {
  const root = path.resolve(rootfs);
  const pending = p.split('/').filter(Boolean);
  const done: string[] = [];
  let links = 0;
  while (pending.length) {
    const part = pending.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = path.join(root, ...done, part);
    let target: string | undefined;
    try {
      const st = await fs.lstat(host);
      if (st.isSymbolicLink()) target = await fs.readlink(host);
    } catch {
      /* missing: keep the rest literally */
    }
    if (target === undefined) {
      done.push(part);
      continue;
    }
    if (++links > 40) throw Object.assign(new Error(`too many symlinks resolving ${p}`), { code: 'ELOOP' });
    if (target.startsWith('/')) done.length = 0;
    pending.unshift(...target.split('/').filter(Boolean));
  }
  return path.join(root, ...done);
}

/** Reads a container file (in-root resolution); undefined when missing. */
export async function readInRoot(rootfs: string, p: string): Promise<string | undefined> {
  try {
    return await fs.readFile(await resolveInRoot(rootfs, p), 'utf8');
  } catch {
    return undefined;
  }
}
