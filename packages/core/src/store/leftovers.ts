/**
 * What dead processes leave in a store: temp files and dirs, leases, lock files, mounts, and
 * the cgroups of their RUNs. Each carries its owner's pid (owner.ts); a live owner's are its work
 * in progress and never reported. Names without an owner count once they are an hour old.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { unmountAll } from '@vlab/overlay';
import { orphanCgroups, sweepOrphanCgroups } from '../exec/cgroups.ts';
import { cgroupParentOf } from './paths.ts';
import { staleLeases } from './lease.ts';
import { ownerOf, pidAlive } from './owner.ts';

export interface Leftover {
  kind: 'temp-orphan' | 'lease-stale' | 'lock-stale' | 'mount-orphan' | 'cgroup-orphan';
  target: string;
  message: string;
  /** Set when removing it is safe (its owner is known to be dead). */
  fix?: () => Promise<void>;
}

const HOUR = 3600_000;
/** Dirs whose `*.tmp-<pid>…` entries are atomic writes (write temp, rename). */
const ATOMIC_DIRS = ['.', 'blobs/sha256', 'cache', 'cache/records', 'cache/inputs'];
const LOCKS = ['index.lock', 'gc.lock', 'snapshots/metadata.lock'];

export async function findLeftovers(store: string): Promise<Leftover[]> {
  const root = await real(store); // as mountinfo spells it
  const out: Leftover[] = [];
  // mounts first: a temp dir is unmounted before it is removed
  out.push(...(await orphanMounts(root)));
  for (const rel of await orphanCgroups(cgroupParentOf(root))) {
    out.push({
      kind: 'cgroup-orphan',
      target: rel,
      message: 'cgroup of a RUN whose build died',
      fix: () => sweepOrphanCgroups(path.dirname(rel)),
    });
  }
  out.push(...(await fileLeftovers(root)));
  for (const rel of LOCKS) {
    const f = path.join(root, rel);
    const text = await fsp.readFile(f, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const pid = Number(text);
    const age = Date.now() - ((await fsp.stat(f).catch(() => undefined))?.mtimeMs ?? Date.now());
    if ((pid && !pidAlive(pid)) || (!pid && age > 10_000)) {
      out.push({
        kind: 'lock-stale',
        target: f,
        message: pid ? `lock of dead pid ${pid}` : 'empty lock file',
        fix: () => fsp.rm(f, { force: true }),
      });
    }
  }
  return out;
}

/**
 * What every store open removes (the next build's recovery): the mounts under tmp/, temp files
 * and dirs and leases of dead owners. Temp snapshots wait for the snapshotter (LayerManager),
 * cgroups for the executor, stale locks for their next taker.
 */
export async function recoverLeftovers(store: string): Promise<void> {
  const root = await real(store);
  const mounts = (await orphanMounts(root)).filter((m) => m.fix && m.target.startsWith(path.join(root, 'tmp') + '/'));
  for (const l of [...mounts, ...(await fileLeftovers(root))]) await l.fix?.().catch(() => undefined);
}

async function fileLeftovers(root: string): Promise<Leftover[]> {
  const out: Leftover[] = [];
  for (const dir of ATOMIC_DIRS) {
    for (const n of await names(path.join(root, dir))) {
      if (n.includes('.tmp-')) await temp(out, path.join(root, dir, n), 'temp file of an interrupted write');
    }
  }
  for (const n of await names(path.join(root, 'tmp')))
    await temp(out, path.join(root, 'tmp', n), 'temp dir of a build step');
  // a container or volume record half made (.tmp-) or half removed (.rm-) by a process that died
  for (const dir of ['containers', 'volumes'])
    for (const n of await names(path.join(root, dir)))
      if (n.startsWith('.tmp-') || n.startsWith('.rm-'))
        await temp(out, path.join(root, dir, n), `${dir} record being written or removed`);
  for (const n of await names(path.join(root, 'snapshots'))) {
    if (n.startsWith('probe-')) await temp(out, path.join(root, 'snapshots', n), 'overlay probe dir');
  }
  for (const f of await staleLeases(root))
    out.push({
      kind: 'lease-stale',
      target: f,
      message: 'lease of a build that died',
      fix: () => fsp.rm(f, { force: true }),
    });
  return out;
}

async function temp(out: Leftover[], file: string, what: string): Promise<void> {
  const owner = ownerOf(path.basename(file));
  if (owner !== undefined && pidAlive(owner)) return;
  if (owner === undefined) {
    const st = await fsp.lstat(file).catch(() => undefined);
    if (!st || Date.now() - st.mtimeMs < HOUR) return;
  }
  out.push({
    kind: 'temp-orphan',
    target: file,
    message: owner !== undefined ? `${what} of dead pid ${owner}` : `${what}, over an hour old, no owner`,
    fix: async () => {
      // never delete through a mount: a dir with one on or under it is left to the mount repair
      if (!mountPoints().some((m) => m === file || m.startsWith(`${file}/`)))
        await fsp.rm(file, { recursive: true, force: true });
    },
  });
}

/** Mount points under the store whose path names a dead owner (or none: those are only reported). */
async function orphanMounts(root: string): Promise<Leftover[]> {
  const out: Leftover[] = [];
  const seen = new Set<string>();
  for (const mp of mountPoints()) {
    if (!mp.startsWith(`${root}/`) || seen.has(mp)) continue;
    if (mp.startsWith(`${root}/containers/`)) continue; // a container's rootfs: containers/fsck.ts
    seen.add(mp);
    const owners = path
      .relative(root, mp)
      .split('/')
      .map(ownerOf)
      .filter((p): p is number => p !== undefined);
    if (owners.some(pidAlive)) continue;
    const dead = owners.length > 0;
    out.push({
      kind: 'mount-orphan',
      target: mp,
      message: dead
        ? `mount of dead pid ${owners[0]}`
        : 'mount under the store that no build owns (not removed: unmount it yourself)',
      fix: dead ? () => unmountAll(mp) : undefined,
    });
  }
  return out;
}

/** Every mount point of this mount namespace (/proc/self/mountinfo), unescaped. */
function mountPoints(): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) =>
      (line.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))),
    )
    .filter(Boolean);
}

function real(root: string): Promise<string> {
  return fsp.realpath(root).catch(() => path.resolve(root));
}

async function names(dir: string): Promise<string[]> {
  return fsp.readdir(dir).catch(() => [] as string[]);
}
