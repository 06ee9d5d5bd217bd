import type { StatLike } from '../../context/walk.ts';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { hostPath, nameFromBytes } from '@vlab/overlay';
import { pathComponentProblem, type CopyInstruction } from '@vlab/dockerfile';

/** One thing to copy: a host path and where it lands, relative to the destination directory. */
export interface CopyItem {
  src: string;
  /** Set when `src` is in a build context: `src` is `root`/its path there, and its links are read in-root. */
  root?: string;
  /** Path relative to the copy target ('' = the target itself). */
  rel: string;
  stats: StatLike;
}

export interface Owner {
  uid: number;
  gid: number;
}

/**
 * Docker's destination rule: a trailing '/', an existing directory (`existsAsDir`), several
 * sources or a wildcard make the destination a directory (the latter two require one of the
 * former); a single file otherwise. A directory source copies its contents.
 */
export function destRule(
  inst: CopyInstruction,
  dest: string,
  existsAsDir: boolean,
  sourceCount: number,
  wildcard: boolean,
): boolean {
  if (dest.endsWith('/') || existsAsDir) return true;
  if (sourceCount > 1 || wildcard) {
    throw new VlabError(
      'E_COPY_DEST',
      `${inst.kind} with more than one source file needs a destination directory ending with '/' (got ${dest})`,
      {
        location: { line: inst.range.start.line, column: inst.range.start.column },
      },
    );
  }
  return false;
}

/** Items under a host directory (for COPY --from a stage), sorted, root first. */
export async function walkHostTree(dir: string, excluded: (rel: string) => boolean = () => false): Promise<CopyItem[]> {
  const out: CopyItem[] = [];
  const visit = async (abs: string, rel: string): Promise<void> => {
    // A whiteout seen through a read-only view is absent: overlayfs lists the whiteouts of a
    // directory that is not merged but cannot stat them (ENOENT), and a single-layer view shows
    // them as the 0/0 character device they are stored as.
    const stats = await fsp.lstat(hostPath(abs)).catch((e: NodeJS.ErrnoException) => {
      if (rel && e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (!stats || (rel && stats.isCharacterDevice() && stats.rdev === 0)) return;
    if (rel && excluded(rel)) return;
    out.push({ src: abs, rel, stats });
    if (stats.isDirectory()) {
      // names as their bytes (fsname.ts): a decoded one would be lossy
      const names = (await fsp.readdir(hostPath(abs), { encoding: 'buffer' })).map((n) => nameFromBytes(n)).sort();
      for (const name of names) await visit(path.join(abs, name), rel ? `${rel}/${name}` : name);
    }
  };
  await visit(dir, '');
  return out;
}

export function parseChmod(inst: CopyInstruction): number | undefined {
  if (!inst.chmod) return undefined;
  if (!/^[0-7]{3,4}$/.test(inst.chmod)) {
    throw new VlabError('E_BAD_FLAG', `--chmod=${inst.chmod}: expected an octal mode like 755`, {
      location: { line: inst.range.start.line, column: inst.range.start.column },
    });
  }
  return parseInt(inst.chmod, 8);
}

/**
 * COPY/ADD heredoc bodies as files for a copy plan: each body goes to a file named by its index
 * in a fresh private dir (mkdtemp, 0700) under `tmpParent`; the heredoc's name is only the
 * destination name in the image (`rel`), resolved in-root like any COPY destination. The parser
 * already refused names that are not one path component. The caller removes `dir`.
 */
export async function heredocFiles(
  tmpParent: string,
  heredocs: readonly { name: string; content: string }[],
): Promise<{ dir: string; items: CopyItem[] }> {
  // The parser refuses these already (E_PARSE); checked again here, where the name meets the filesystem.
  for (const d of heredocs) {
    const problem = pathComponentProblem(d.name);
    if (problem)
      throw new VlabError('E_COPY_SOURCE', `heredoc <<${d.name.slice(0, 64)}: not one file name (${problem})`);
  }
  // the owner pid in the name: a killed build's dir is removed by the next store open (leftovers.ts)
  const dir = await fsp.mkdtemp(path.join(tmpParent, `heredoc-${process.pid}-`));
  const items: CopyItem[] = [];
  for (const [i, d] of heredocs.entries()) {
    const src = path.join(dir, String(i));
    await fsp.writeFile(src, d.content, { mode: 0o644, flag: 'wx' });
    // Its mtime is the build's clock, the one COPY gives the dirs it makes (not the write's own second).
    const now = new Date();
    await fsp.utimes(src, now, now);
    items.push({ src, rel: d.name, stats: await fsp.lstat(src) }); // src: a digit name, no escapes
  }
  return { dir, items };
}
