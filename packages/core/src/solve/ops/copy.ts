import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { pathComponentProblem, type CopyInstruction } from '@vlab/dockerfile';
import { mkdirInRoot, resolveInRoot } from '../../fsutil/in-root.ts';

/** One thing to copy: a host path and where it lands, relative to the destination directory. */
export interface CopyItem {
  src: string;
  /** Path relative to the copy target ('' = the target itself). */
  rel: string;
  stats: fs.Stats;
}

export interface CopyPlan {
  /** Absolute path in the image. */
  dest: string;
  /** Whether dest names a directory that items go into. */
  destIsDir: boolean;
  items: CopyItem[];
  /**
   * Without --chown, items keep their own uid/gid (COPY --from a stage or image, as BuildKit);
   * otherwise they become 0:0 (context files, downloads, heredocs).
   */
  keepOwners?: boolean;
}

export interface Owner {
  uid: number;
  gid: number;
}

/**
 * Docker's destination rule: a trailing '/', several sources, a wildcard or an existing directory
 * make the destination a directory; a single file otherwise. A directory source copies its contents.
 */
export async function destIsDirectory(
  rootfs: string,
  dest: string,
  sourceCount: number,
  wildcard: boolean,
  inst: CopyInstruction,
): Promise<boolean> {
  const existing = dest.endsWith('/')
    ? undefined
    : await fsp.stat(await resolveInRoot(rootfs, dest)).catch(() => undefined);
  return destRule(inst, dest, existing?.isDirectory() === true, sourceCount, wildcard);
}

/** The rule itself, for callers that know whether dest is an existing directory (the fast path). */
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

const ROOT_OWNER: Owner = { uid: 0, gid: 0 };

function specialKind(st: fs.Stats): string {
  return st.isFIFO()
    ? 'a fifo'
    : st.isSocket()
      ? 'a socket'
      : st.isCharacterDevice()
        ? 'a character device'
        : st.isBlockDevice()
          ? 'a block device'
          : 'a special file';
}

/** Files above this size are copied by the kernel asynchronously (copy_file_range/reflink). */
const BIG_FILE = 1 << 20;
const BATCH = 128;
const breathe = () => new Promise<void>((r) => setImmediate(r));

/**
 * Copy the plan's items into the mounted rootfs, with --chown/--chmod applied; mtimes kept.
 * Small files and metadata use synchronous calls in batches: for thousands of small files the
 * thread-pool round trip of each async call costs more than the call itself. Parent directories
 * are resolved in-root once and remembered, so a deep tree is not re-resolved per file.
 */
export async function copyInto(
  rootfs: string,
  plan: CopyPlan,
  opts: { owner?: Owner; chmod?: number; links?: HardLinks },
): Promise<void> {
  const links = opts.links ?? new Map<string, string>();
  const ownerOf = (st: fs.Stats): Owner => opts.owner ?? (plan.keepOwners ? { uid: st.uid, gid: st.gid } : ROOT_OWNER);
  const destDir = plan.destIsDir ? plan.dest : path.posix.dirname(plan.dest);
  await mkdirInRoot(rootfs, destDir, opts.owner);
  const hostDirs = new Map<string, string>();
  const hostOf = async (target: string): Promise<string> => {
    const parent = path.posix.dirname(target);
    let hostParent = hostDirs.get(parent);
    if (hostParent === undefined) {
      hostParent = await resolveInRoot(rootfs, parent);
      hostDirs.set(parent, hostParent);
    }
    return path.join(hostParent, path.posix.basename(target));
  };
  const dirs: { host: string; st: fs.Stats }[] = [];
  let n = 0;
  for (const item of plan.items) {
    const target = plan.destIsDir ? path.posix.join(plan.dest, item.rel) : plan.dest;
    const host = await hostOf(target);
    const st = item.stats;
    const existing = lstatOrUndefined(host);
    if (st.isDirectory()) {
      if (existing && !existing.isDirectory()) fs.rmSync(host, { recursive: true, force: true });
      if (!existing?.isDirectory()) fs.mkdirSync(host);
      hostDirs.set(target, host);
      const owner = ownerOf(st);
      fs.chownSync(host, owner.uid, owner.gid);
      fs.chmodSync(host, opts.chmod ?? st.mode & 0o7777);
      dirs.push({ host, st });
    } else {
      if (existing) fs.rmSync(host, { recursive: true, force: true });
      if (st.isSymbolicLink()) {
        fs.symlinkSync(fs.readlinkSync(item.src), host);
        const owner = ownerOf(st);
        fs.lchownSync(host, owner.uid, owner.gid);
      } else if (st.nlink > 1 && linkTo(links, `${st.dev}:${st.ino}`, host)) {
        // a hard link to a file this COPY already wrote: same inode, metadata already set
      } else {
        // Opening a FIFO blocks (the event loop with it) and a device reads as endless or empty
        // data: only regular files are copied; special files from an image are refused, typed.
        if (!st.isFile())
          throw new VlabError(
            'E_COPY_SOURCE',
            `${specialKind(st)} ${item.rel || path.posix.basename(target)}: COPY of fifos, sockets and device nodes is not supported`,
          );
        if (st.size > BIG_FILE) await fsp.copyFile(item.src, host);
        else fs.copyFileSync(item.src, host);
        const owner = ownerOf(st);
        fs.chownSync(host, owner.uid, owner.gid);
        fs.chmodSync(host, opts.chmod ?? st.mode & 0o7777);
        fs.utimesSync(host, st.atime, st.mtime);
      }
    }
    if (++n % BATCH === 0) await breathe();
  }
  // Directory mtimes last: writing their children changed them.
  for (const { host, st } of dirs.reverse()) fs.utimesSync(host, st.atime, st.mtime);
}

/**
 * Source inode ("dev:ino") → host path of its first copy. One map per COPY instruction: BuildKit
 * keeps hard links between the files of one COPY (not with files outside it).
 */
export type HardLinks = Map<string, string>;

/** Link `host` to the earlier copy of the same source inode; false (and remembered) when first. */
function linkTo(links: HardLinks, id: string, host: string): boolean {
  const first = links.get(id);
  if (first !== undefined) {
    try {
      fs.linkSync(first, host);
      return true;
    } catch {
      /* the first copy was replaced meanwhile: copy this one */
    }
  }
  links.set(id, host);
  return false;
}

function lstatOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch {
    return undefined;
  }
}

/** Items under a host directory (for COPY --from a stage), sorted, root first. */
export async function walkHostTree(dir: string, excluded: (rel: string) => boolean = () => false): Promise<CopyItem[]> {
  const out: CopyItem[] = [];
  const visit = async (abs: string, rel: string): Promise<void> => {
    // A whiteout seen through a read-only view is absent: overlayfs lists the whiteouts of a
    // directory that is not merged but cannot stat them (ENOENT), and a single-layer view shows
    // them as the 0/0 character device they are stored as.
    const stats = await fsp.lstat(abs).catch((e: NodeJS.ErrnoException) => {
      if (rel && e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (!stats || (rel && stats.isCharacterDevice() && stats.rdev === 0)) return;
    if (rel && excluded(rel)) return;
    out.push({ src: abs, rel, stats });
    if (stats.isDirectory()) {
      for (const name of (await fsp.readdir(abs)).sort())
        await visit(path.join(abs, name), rel ? `${rel}/${name}` : name);
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
    items.push({ src, rel: d.name, stats: await fsp.lstat(src) });
  }
  return { dir, items };
}
