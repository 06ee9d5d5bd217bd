/** Disk usage of a tree, as du counts it: allocated blocks, each inode once (hard links), the root itself left out. */
import { promises as fs, type Stats } from 'node:fs';
import * as path from 'node:path';
import type { Usage } from './types.ts';

/** Bytes a file or dir takes on disk (its allocated blocks), as du counts them. */
export const diskBytes = (st: Stats): number => st.blocks * 512;

/** Usage of what is under `dir` (a missing dir is empty). Symlinks are not followed. */
export async function dirUsage(dir: string): Promise<Usage> {
  const u: Usage = { size: 0, inodes: 0 };
  const seen = new Set<number>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const st = await fs.lstat(p);
      if (seen.has(st.ino)) continue;
      seen.add(st.ino);
      u.inodes++;
      u.size += diskBytes(st);
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir).catch((e) => {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  });
  return u;
}
