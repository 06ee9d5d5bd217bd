/** Test helpers: a comparable description of a directory tree (content, modes, owners, links, xattrs). */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { readXattrsTree } from '../sys.ts';

export interface Node {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime?: number;
  sha?: string;
  link?: string;
  rdev?: number;
  xattrs?: string;
  hardlink?: string; // first path (sorted) sharing this inode
}

export async function describeTree(
  root: string,
  opts: { mtimes?: boolean; skipXattrs?: boolean } = {},
): Promise<Record<string, Node>> {
  const out: Record<string, Node> = {};
  const xa = opts.skipXattrs ? new Map() : await readXattrsTree(root);
  const inodes = new Map<number, string>();
  const walk = async (rel: string) => {
    const names = (await fs.readdir(path.join(root, rel))).sort();
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const abs = path.join(root, r);
      const st = await fs.lstat(abs);
      const type = st.isFile()
        ? 'file'
        : st.isDirectory()
          ? 'dir'
          : st.isSymbolicLink()
            ? 'symlink'
            : st.isCharacterDevice()
              ? 'char'
              : st.isBlockDevice()
                ? 'block'
                : st.isFIFO()
                  ? 'fifo'
                  : 'other';
      const node: Node = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      if (opts.mtimes && type !== 'dir') node.mtime = Math.floor(st.mtimeMs / 1000);
      if (type === 'file')
        node.sha = createHash('sha256')
          .update(await fs.readFile(abs))
          .digest('hex');
      if (type === 'symlink') node.link = await fs.readlink(abs);
      if (type === 'char' || type === 'block') node.rdev = st.rdev;
      const x = xa.get(abs);
      if (x && x.size)
        node.xattrs =
          [...x]
            .filter(([k]) => !/^(trusted|user)\.overlay\.|^security\.selinux$/.test(k))
            .map(([k, v]) => `${k}=${v.toString('base64')}`)
            .sort()
            .join(',') || undefined;
      if (!node.xattrs) delete node.xattrs;
      if (type !== 'dir' && st.nlink > 1) {
        const first = inodes.get(st.ino);
        if (first) node.hardlink = first;
        else inodes.set(st.ino, r);
      }
      out[r] = node;
      if (type === 'dir') await walk(r);
    }
  };
  await walk('');
  return out;
}
