/**
 * The container's mount table as the executor suite compares it: one `MOUNTPOINT FLAGS` line per
 * mountinfo entry, FLAGS = the per-mount ro|rw, nosuid, nodev, noexec (what decides what a RUN may
 * do; atime flags and superblock options are left out). `expectedMountTable` writes down Docker's
 * defaults (runc's result for moby's spec, with our nodev on binds and /dev) independently of
 * exec/mounts.ts, so every executor is held to the same table.
 */
import { existsSync, promises as fs, statSync } from 'node:fs';
import path from 'node:path';
import { detectCgroupLayout } from '../cgroups.ts';
import { MASKED_PATHS, READONLY_PATHS } from '../defaults.ts';

const FLAGS = ['nosuid', 'nodev', 'noexec'];

/** `/proc/self/mountinfo` text → sorted `MOUNTPOINT FLAGS` lines. */
export function mountTable(mountinfo: string): string[] {
  return mountinfo
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split(' ');
      return `${unescape(f[4]!)} ${flagsOf(f[5]!.split(','))}`;
    })
    .sort();
}

function flagsOf(opts: string[], add: string[] = []): string {
  const all = new Set([...opts, ...add]);
  const ro = all.has('ro') ? 'ro' : 'rw';
  return [ro, ...FLAGS.filter((f) => all.has(f))].join(',');
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Per-mount options of the host mount that holds `p` (a plain bind inherits them). */
async function hostFlags(p: string): Promise<string[]> {
  const real = await fs.realpath(p);
  let best: { point: string; opts: string[] } | undefined;
  for (const l of (await fs.readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter(Boolean)) {
    const f = l.split(' ');
    const point = unescape(f[4]!);
    const inside = point === '/' || real === point || real.startsWith(point + '/');
    // the longest mountpoint wins; of stacked ones the last (topmost)
    if (inside && (!best || point.length >= best.point.length)) best = { point, opts: f[5]!.split(',') };
  }
  return best!.opts;
}

export interface ExpectedMounts {
  /** The spec's extra mounts. */
  mounts: { type: 'bind' | 'tmpfs'; source?: string; target: string; readonly?: boolean }[];
}

/** Docker's mount table for a root container on this host's cgroup layout. */
export async function expectedMountTable(e: ExpectedMounts): Promise<string[]> {
  const nodev = ['nodev'];
  const devNull = await hostFlags('/dev/null');
  const rows: [string, string][] = [
    ['/', 'rw,nodev'],
    ['/proc', 'rw,nosuid,nodev,noexec'],
    ['/dev', 'rw,nosuid,nodev'],
    ...['null', 'zero', 'full', 'random', 'urandom', 'tty'].map((d): [string, string] => [
      `/dev/${d}`,
      flagsOf(devNull),
    ]),
    ['/dev/pts', 'rw,nosuid,noexec'],
    ['/dev/shm', 'rw,nosuid,nodev,noexec'],
    ['/dev/mqueue', 'rw,nosuid,nodev,noexec'],
    ['/sys', 'ro,nosuid,nodev,noexec'],
  ];
  const layout = await detectCgroupLayout();
  if (layout.version === 'v2') rows.push(['/sys/fs/cgroup', 'ro,nosuid,nodev,noexec']);
  else {
    // moby on v1 (and hybrid, which it treats as v1): the host's cgroup namespace, a tmpfs, and
    // the container's own cgroup of every v1 hierarchy bound read-only (the unified one is not).
    rows.push(['/sys/fs/cgroup', 'rw,nosuid,nodev,noexec']);
    for (const h of await v1Hierarchies()) rows.push([`/sys/fs/cgroup/${path.basename(h)}`, 'ro,nosuid,nodev,noexec']);
  }
  // binds with flags are remounted with exactly those (the source's are not kept)
  for (const f of ['hosts', 'resolv.conf', 'hostname']) rows.push([`/etc/${f}`, 'rw,nodev']);
  for (const m of e.mounts) {
    if (m.type === 'tmpfs') rows.push([m.target, flagsOf(m.readonly ? ['ro'] : [], ['nosuid', 'nodev'])]);
    else rows.push([m.target, flagsOf(m.readonly ? ['ro'] : [], nodev)]);
  }
  // runc's masks: an empty read-only tmpfs on a directory, /dev/null bound on a file
  for (const m of MASKED_PATHS) {
    if (!existsSync(m)) continue;
    rows.push([m, statSync(m).isDirectory() ? 'ro' : flagsOf(devNull)]);
  }
  // runc's read-only paths: a bind of itself, remounted ro with proc's own flags kept
  for (const m of READONLY_PATHS) if (existsSync(m)) rows.push([m, 'ro,nosuid,nodev,noexec']);
  return rows.map(([p, f]) => `${p} ${f}`).sort();
}

/** Mount points of the host's v1 hierarchies (named ones too), as in /proc/self/mountinfo. */
async function v1Hierarchies(): Promise<string[]> {
  return (await fs.readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .filter((l) => / - cgroup /.test(l))
    .map((l) => unescape(l.split(' ')[4]!));
}
