/**
 * The built-in executor's translation of the container mount list (mounts.ts) into mount(8) terms:
 * host targets under the rootfs, the `cgroup` entry in the host layout's form, and the masked and
 * read-only paths made as runc makes them (so both executors show the same mount table). vlab-init
 * takes the lines as mount(2) calls (native-spec.ts), the shell launcher as fstab tables.
 */
import { readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import type { PreparedRun } from './prepare.ts';
import type { Cgroup, CgroupVersion } from './cgroups.ts';
import { MASKED_PATHS, READONLY_PATHS } from './defaults.ts';
import { containerMounts } from './mounts.ts';
import { mapsId, type UserNs } from './rootless.ts';

export type FstabLine = [source: string, target: string, type: string, options: string];

/** What the translation needs beyond the run: the host, the run's cgroup, rootless mode. */
export interface BuiltinMountContext {
  /** Which masked and read-only paths exist: /proc and /sys show the host kernel's entries. */
  hostHas: (containerPath: string) => 'dir' | 'file' | undefined;
  /** The host's layout and the run's cgroup (undefined in rootless mode: no /sys/fs/cgroup). */
  cgroup?: { version: CgroupVersion; cg?: Cgroup };
  ns?: UserNs;
}

/**
 * The container's mounts as mount(8) lines: `early` before /dev is filled (the root, /proc, the
 * /dev tmpfs), `late` after (device binds, everything else, then masks and read-only paths).
 */
export function builtinMounts(p: PreparedRun, c: BuiltinMountContext): { early: FstabLine[]; late: FstabLine[] } {
  const R = p.rootfs;
  const r = (sub: string) => path.join(R, sub);
  const hostTargets = new Map(p.mounts.map((m) => [m.target, m.hostTarget]));
  const list = containerMounts({
    rootfs: R,
    network: p.network,
    mounts: p.mounts,
    cgroup: c.ns ? undefined : c.cgroup?.version,
    rootless: c.ns ? { mapsGid5: mapsId(c.ns, 5, 'gids') } : undefined,
    readonlyRootfs: p.readonlyRootfs,
  });
  const lines: FstabLine[] = [];
  let early = 0;
  for (const m of list) {
    const target = m.destination === '/' ? R : (hostTargets.get(m.destination) ?? r(m.destination));
    if (m.type === 'cgroup') lines.push(...cgroupLines(target, m.options, c.cgroup!));
    else lines.push([m.source, target, m.type === 'bind' ? 'none' : m.type, m.options.join(',')]);
    if (m.destination === '/dev') early = lines.length;
  }
  // runc's masks: an empty read-only tmpfs on a directory, /dev/null bound on a file
  for (const m of MASKED_PATHS) {
    const kind = c.hostHas(m);
    if (kind === 'dir') lines.push(['tmpfs', r(m), 'tmpfs', 'ro']);
    if (kind === 'file') lines.push(['/dev/null', r(m), 'none', 'bind']);
  }
  // runc's read-only paths: bound onto themselves, remounted ro keeping /proc's own flags
  for (const m of READONLY_PATHS) if (c.hostHas(m)) lines.push([r(m), r(m), 'none', 'bind,ro,nosuid,nodev,noexec']);
  return { early: lines.slice(0, early), late: lines.slice(early) };
}

/**
 * /sys/fs/cgroup as runc makes it for Docker's spec: on pure v2 the cgroup2 of the container's own
 * cgroup namespace (made by the launcher, mounts.ts `cgroupNamespace`); on v1 and hybrid (the
 * host's namespace) a tmpfs holding the run's own cgroup of every v1 hierarchy, bound read-only.
 */
function cgroupLines(target: string, options: string[], c: { version: CgroupVersion; cg?: Cgroup }): FstabLine[] {
  const opts = options.join(',');
  if (c.version === 'v2') return [['cgroup', target, 'cgroup2', opts]];
  const lines: FstabLine[] = [['tmpfs', target, 'tmpfs', 'nosuid,nodev,noexec,relatime,mode=755']];
  const cg = c.cg;
  if (!cg) return lines;
  const joined = new Set(Object.values(cg.dirs));
  for (const h of cg.layout.hierarchies) {
    const dir = path.join(h, cg.rel);
    if (joined.has(dir)) lines.push([dir, path.join(target, path.basename(h)), 'none', `bind,X-mount.mkdir,${opts}`]);
  }
  return lines;
}

/**
 * What the shell launcher mounts: a table for one `mount -a -T`, or one entry by itself; `pin`:
 * the entry's source is the path a pinned fd's link shows, and after the mount its target must be
 * that very file, `device:inode` as stat(1) prints them (pinnedSource).
 */
export type MountStep = { fstab: string } | { line: FstabLine; pin?: string };

/**
 * A bind source that is this process's `/proc/<pid>/fd/N` link (bind-source.ts: a stage directory
 * pinned by its fd where this process cannot mount, rootless): mount(2) in the container's mount
 * namespace refuses it (the link names a mount of this one), and the container's user namespace
 * may not even read it. So the entry mounts the path the link shows now, and the launcher checks
 * after the mount that the target is the pinned file (its device and inode, read here through the
 * fd): swapped for a link to a host dir meanwhile, the run fails (125) before anything runs in it.
 * Undefined for any other source.
 */
export function pinnedSource(source: string): { path: string; pin: string } | undefined {
  if (!new RegExp(`^/proc/${process.pid}/fd/\\d+$`).test(source)) return undefined;
  const st = statSync(source, { bigint: true });
  return { path: readlinkSync(source), pin: `${st.dev}:${st.ino}` };
}

/**
 * builtinMounts() as the shell launcher carries it out: runs of entries batched into fstab
 * tables, in order. But `mount -a` skips as "already mounted" an entry whose target was a mount
 * of the same source when it started (it reads the mount table once): the rootfs self-bind (the
 * rootfs is a mount, the builder's snapshot; skipped, the root would lose nodev), or an entry on a
 * target an earlier table mounted. An entry on a target mounted before (the rootfs, any earlier
 * entry's) is mounted by itself, in its place.
 */
export function mountPlan(p: PreparedRun, c: BuiltinMountContext): { early: MountStep[]; late: MountStep[] } {
  const { early, late } = builtinMounts(p, c);
  const mounted = new Set([p.rootfs]);
  const plan = (lines: FstabLine[]) => {
    const steps: MountStep[] = [];
    let table = '';
    for (const l of lines) {
      const target = l[1];
      const pinned = l[2] === 'none' ? pinnedSource(l[0]) : undefined;
      if (mounted.has(target) || pinned) {
        if (table) steps.push({ fstab: table });
        table = '';
        steps.push(pinned ? { line: [pinned.path, ...l.slice(1)] as FstabLine, pin: pinned.pin } : { line: l });
      } else table += l.map(fstabEscape).join(' ') + ' 0 0\n';
      mounted.add(target);
    }
    if (table) steps.push({ fstab: table });
    return steps;
  };
  return { early: plan(early), late: plan(late) };
}

function fstabEscape(s: string): string {
  return s.replace(/[\\ \t\n]/g, (c) => '\\' + c.charCodeAt(0).toString(8).padStart(3, '0'));
}
