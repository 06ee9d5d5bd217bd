import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { VlabError } from '@vlab/errors';
import type { CopyInstruction } from '@vlab/dockerfile';
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
}

export interface Owner {
  uid: number;
  gid: number;
}

/**
 * Docker's destination rule: a trailing '/', several sources, a wildcard or an existing directory
 * make the destination a directory; a single file otherwise. A directory source copies its contents.
 */
export async function destIsDirectory(rootfs: string, dest: string, sourceCount: number, wildcard: boolean, inst: CopyInstruction): Promise<boolean> {
  if (dest.endsWith('/')) return true;
  const existing = await fsp.stat(await resolveInRoot(rootfs, dest)).catch(() => undefined);
  if (existing?.isDirectory()) return true;
  if (sourceCount > 1 || wildcard) {
    throw new VlabError('E_COPY_DEST', `${inst.kind} with more than one source file needs a destination directory ending with '/' (got ${dest})`, {
      location: { line: inst.range.start.line, column: inst.range.start.column },
    });
  }
  return false;
}

/** Copy the plan's items into the mounted rootfs, with --chown/--chmod applied; mtimes kept. */
export async function copyInto(rootfs: string, plan: CopyPlan, opts: { owner?: Owner; chmod?: number }): Promise<void> {
  const owner = opts.owner ?? { uid: 0, gid: 0 };
  const destDir = plan.destIsDir ? plan.dest : path.posix.dirname(plan.dest);
  await mkdirInRoot(rootfs, destDir, opts.owner);
  const batch: Promise<void>[] = [];
  for (const item of plan.items) {
    const target = plan.destIsDir ? path.posix.join(plan.dest, item.rel) : plan.dest;
    const host = await resolveInRoot(rootfs, target, false);
    const st = item.stats;
    if (st.isDirectory()) {
      const existing = await fsp.lstat(host).catch(() => undefined);
      if (existing && !existing.isDirectory()) await fsp.rm(host, { recursive: true, force: true });
      if (!existing?.isDirectory()) await fsp.mkdir(host);
      await finish(host, st, owner, opts.chmod, false);
      continue;
    }
    const job = (async () => {
      await fsp.rm(host, { recursive: true, force: true });
      if (st.isSymbolicLink()) {
        await fsp.symlink(await fsp.readlink(item.src), host);
        await finish(host, st, owner, undefined, true);
      } else {
        await pipeline(fs.createReadStream(item.src), fs.createWriteStream(host, { mode: 0o600 }));
        await finish(host, st, owner, opts.chmod, false);
      }
    })();
    batch.push(job);
    if (batch.length >= 64) await Promise.all(batch.splice(0));
  }
  await Promise.all(batch);
  // Directory mtimes last: writing children changed them.
  for (const item of [...plan.items].reverse()) {
    if (!item.stats.isDirectory()) continue;
    const target = plan.destIsDir ? path.posix.join(plan.dest, item.rel) : plan.dest;
    await fsp.utimes(await resolveInRoot(rootfs, target, false), item.stats.atime, item.stats.mtime);
  }
}

async function finish(host: string, st: fs.Stats, owner: Owner, chmod: number | undefined, isLink: boolean): Promise<void> {
  if (isLink) {
    await fsp.lchown(host, owner.uid, owner.gid);
    return;
  }
  await fsp.chown(host, owner.uid, owner.gid);
  await fsp.chmod(host, chmod ?? st.mode & 0o7777);
  await fsp.utimes(host, st.atime, st.mtime);
}

/** Items under a host directory (for COPY --from a stage), sorted, root first. */
export async function walkHostTree(dir: string, excluded: (rel: string) => boolean = () => false): Promise<CopyItem[]> {
  const out: CopyItem[] = [];
  const visit = async (abs: string, rel: string): Promise<void> => {
    const stats = await fsp.lstat(abs);
    if (rel && excluded(rel)) return;
    out.push({ src: abs, rel, stats });
    if (stats.isDirectory()) {
      for (const name of (await fsp.readdir(abs)).sort()) await visit(path.join(abs, name), rel ? `${rel}/${name}` : name);
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
