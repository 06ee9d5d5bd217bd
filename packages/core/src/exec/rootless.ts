/**
 * Rootless mode of the built-in executor: run by a non-root user, the container gets a user
 * namespace too, in which that user is root (uid 0 inside = the user's uid outside).
 *
 * Which mapping (decided once, in `detectUserNs`):
 * - **subid** — when /etc/subuid *and* /etc/subgid hold a range for the user (by name or uid) and
 *   newuidmap/newgidmap (package `uidmap`) are installed: `unshare --map-root-user
 *   --map-users=<start>,1,<count> --map-groups=<start>,1,<count>` — inside 0 is the user, 1..count
 *   the subordinate range (written by the setuid helpers, so setgroups stays allowed). `USER 1000`
 *   works when 1000 ≤ count.
 * - **single** — otherwise: `unshare --map-root-user`, the one mapping an unprivileged process may
 *   write itself (0 ↔ the user, setgroups denied). Only uid/gid 0 exist inside; any other USER fails
 *   with E_EXEC_UNAVAILABLE, and supplementary groups can be neither set nor dropped.
 *
 * What root mode does that rootless cannot: cgroup limits (an unprivileged user cannot write
 * cgroup v1 files; a delegated v2 subtree would work but is not implemented), device nodes (mknod is
 * refused in a user namespace: host /dev/null etc. are bind-mounted instead of copied), gid=5 on
 * devpts when gid 5 is not mapped, and sysfs with `network: 'host'` (the host's net namespace is not
 * ours: /sys is bind-mounted read-only from the host instead).
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import type { Limits } from './types.ts';
import type { ResolvedUser } from './user.ts';
import type { CgroupLayout } from './cgroups.ts';
import { DEV_DIRS, DEV_LINKS } from './dev.ts';
import { findHostTool } from './host-tools.ts';

export interface IdRange {
  start: number;
  count: number;
}

export interface UserNs {
  kind: 'single' | 'subid';
  /** The real (outer) uid and gid, root inside. */
  uid: number;
  gid: number;
  /** Subordinate ranges mapped from 1 inside (kind `subid`). */
  uids?: IdRange;
  gids?: IdRange;
}

/** Where newuidmap/newgidmap are looked for: a user's PATH order (bin before sbin). */
const HELPER_DIRS = ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin'];

/** The mapping a non-root user gets (see the module comment for which one when). */
export async function detectUserNs(files = { subuid: '/etc/subuid', subgid: '/etc/subgid' }): Promise<UserNs> {
  const uid = process.getuid!();
  const gid = process.getgid!();
  let name: string | undefined;
  try {
    name = os.userInfo().username;
  } catch {
    name = undefined; // no passwd entry: only numeric lines can match
  }
  const uids = subidRange(await fs.readFile(files.subuid, 'utf8').catch(() => ''), name, uid);
  const gids = subidRange(await fs.readFile(files.subgid, 'utf8').catch(() => ''), name, uid);
  const helpers = await Promise.all(['newuidmap', 'newgidmap'].map((t) => findHostTool(t, HELPER_DIRS)));
  if (uids && gids && helpers.every(Boolean)) return { kind: 'subid', uid, gid, uids, gids };
  return { kind: 'single', uid, gid };
}

/** The first `name:start:count` (or `uid:start:count`) line of a subuid/subgid file for the user. */
export function subidRange(text: string, name: string | undefined, uid: number): IdRange | undefined {
  for (const line of text.split('\n')) {
    const [who, start, count] = line.trim().split(':');
    if (!who || !/^\d+$/.test(start ?? '') || !/^\d+$/.test(count ?? '') || Number(count) === 0) continue;
    if (who === name || who === String(uid)) return { start: Number(start), count: Number(count) };
  }
  return undefined;
}

/** The `unshare` options that create the user namespace (they must come first). */
export function userNsArgs(ns: UserNs): string[] {
  const args = ['--user', '--map-root-user'];
  if (ns.kind === 'subid') {
    args.push(
      `--map-users=${ns.uids!.start},1,${ns.uids!.count}`,
      `--map-groups=${ns.gids!.start},1,${ns.gids!.count}`,
    );
  }
  return args;
}

/** Whether `id` (inside) is mapped. */
export function mapsId(ns: UserNs, id: number, range: 'uids' | 'gids'): boolean {
  if (id === 0) return true;
  const r = ns[range];
  return ns.kind === 'subid' && !!r && id >= 1 && id <= r.count;
}

/** E_EXEC_UNAVAILABLE unless the user's uid, gid and groups all exist in the namespace. */
export function checkUser(ns: UserNs, user: ResolvedUser, spec: string): void {
  const ok = mapsId(ns, user.uid, 'uids') && [user.gid, ...user.additionalGids].every((g) => mapsId(ns, g, 'gids'));
  if (ok) return;
  const why =
    ns.kind === 'single'
      ? 'needs a subuid range (newuidmap) in rootless mode: without /etc/subuid and /etc/subgid entries for this user only uid and gid 0 exist in the container'
      : `is outside the subordinate range mapped in rootless mode (ids 0..${Math.min(ns.uids!.count, ns.gids!.count)})`;
  throw new VlabError('E_EXEC_UNAVAILABLE', `USER ${spec} ${why}`, {
    details: { user: spec, uid: user.uid, gid: user.gid },
  });
}

/** Rootless runs have no cgroup: requested limits fail instead of being silently ignored. */
export function checkLimits(layout: CgroupLayout, limits: Limits | undefined): void {
  const set = Object.entries(limits ?? {})
    .filter(([, v]) => v !== undefined)
    .map(([k]) => k);
  if (!set.length) return;
  const msg =
    layout.version === 'v2'
      ? `cgroup limits (${set.join(', ')}) in rootless mode need a delegated cgroup v2 subtree, which is not supported yet: run as root or drop the limits`
      : `cgroup limits need root on cgroup v1 (${layout.version} here): an unprivileged user cannot set ${set.join(', ')}; run as root or drop the limits`;
  throw new VlabError('E_EXEC_UNAVAILABLE', msg, { details: { limits: set } });
}

/** Host device nodes bind-mounted into the container's /dev (mknod is refused in a user namespace). */
export const ROOTLESS_DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];

/**
 * A /dev skeleton for one rootless run, in its temp dir: empty files as mountpoints for the
 * device binds, the std links, pts/shm/mqueue dirs. Copied (`cp -a`) into the container's /dev.
 */
export async function makeRootlessDevTemplate(dir: string): Promise<string> {
  const t = path.join(dir, 'dev');
  await fs.mkdir(t, { mode: 0o755 });
  for (const n of ROOTLESS_DEVICES) await fs.writeFile(path.join(t, n), '', { mode: 0o666 });
  for (const [n, target] of DEV_LINKS) await fs.symlink(target, path.join(t, n));
  for (const d of DEV_DIRS) await fs.mkdir(path.join(t, d));
  return t;
}
