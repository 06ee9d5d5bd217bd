/**
 * Which cgroup hierarchies the host has (v1, v2 or hybrid), read once from /proc/self/mountinfo,
 * with each mount's root (cgroup-roots.ts: where a /proc/PID/cgroup name is under it).
 */
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import { cgroupDir, findNsRoot, mountRoot, type MountRoot } from './cgroup-roots.ts';

export type CgroupVersion = 'v1' | 'v2' | 'hybrid';

export interface CgroupLayout {
  version: CgroupVersion;
  /** Controllers usable for limits: v1 controllers on v1/hybrid, the v2 root's on pure v2. */
  controllers: string[];
  /** v1 controller name → mount point (co-mounted controllers share one). */
  v1: Record<string, string>;
  /** cgroup2 mount point, if any (on hybrid: the `unified` hierarchy, usually without controllers). */
  unified?: string;
  /**
   * Mount points of every v1 hierarchy, named ones (name=systemd) too. A container joins them all,
   * as runc does: its /sys/fs/cgroup shows its own cgroup in each (builtin-mounts.ts).
   */
  hierarchies: string[];
  /** Named v1 hierarchies (`name=systemd` → its mount point). */
  named?: Record<string, string>;
  /** Mount point → its root, where that is not our cgroup namespace's root (cgroup-roots.ts). */
  roots?: Record<string, MountRoot>;
}

let cached: Promise<CgroupLayout> | undefined;

/** Reads /proc/self/mountinfo once: which hierarchies are mounted and with which controllers. */
export function detectCgroupLayout(): Promise<CgroupLayout> {
  cached ??= readLayout();
  return cached;
}

export async function detectCgroups(): Promise<{ version: CgroupVersion; controllers: string[] }> {
  const { version, controllers } = await detectCgroupLayout();
  return { version, controllers };
}

async function readLayout(): Promise<CgroupLayout> {
  const [text, own] = await Promise.all([
    fs.readFile('/proc/self/mountinfo', 'utf8'),
    fs.readFile('/proc/self/cgroup', 'utf8').catch(() => ''),
  ]);
  const pid = String(process.pid);
  const layout = parseLayout(text, (mount, up, keys) => {
    const mine = ownCgroup(own, keys);
    const listsUs = (file: string) => (readTextSync(file) ?? '').split('\n').includes(pid);
    return mine === undefined ? undefined : findNsRoot(mount, up, mine, listsUs);
  });
  if (layout.version !== 'v2') return layout;
  const ctrls = (await readText(path.join(layout.unified!, 'cgroup.controllers'))) ?? '';
  return { ...layout, controllers: ctrls.split(/\s+/).filter(Boolean) };
}

/**
 * The hierarchies of a mountinfo text (a v2 layout's controllers left to the caller).
 * `nsRoot(mount, up, keys)` finds our cgroup namespace root's directory inside a mount whose root
 * is `up` levels above it (`keys`: the hierarchy's controllers and name, or [''] for cgroup2).
 */
export function parseLayout(
  mountinfo: string,
  nsRoot: (mount: string, up: number, keys: string[]) => string | undefined = () => undefined,
): CgroupLayout {
  const v1: Record<string, string> = {};
  const named: Record<string, string> = {};
  const roots: Record<string, MountRoot> = {};
  const hierarchies = new Set<string>();
  let unified: string | undefined;
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const fields = pre!.split(' ');
    const mountPoint = unescapeMount(fields[4] ?? '');
    const [fstype, , superOpts = ''] = post.split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    let keys = [''];
    if (fstype === 'cgroup2') unified ??= mountPoint;
    else {
      hierarchies.add(mountPoint);
      keys = superOpts.split(',').filter((o) => KNOWN_V1.has(o) || o.startsWith('name='));
      for (const opt of keys) {
        if (KNOWN_V1.has(opt)) v1[opt] ??= mountPoint;
        else named[opt] ??= mountPoint;
      }
    }
    const root = unescapeMount(fields[3] ?? '/');
    // a later line on the same mount point is an overmount: that one is what the path shows
    if (root !== '/') roots[mountPoint] = mountRoot(root, (up) => nsRoot(mountPoint, up, keys));
    else delete roots[mountPoint];
  }
  const hasV1 = Object.keys(v1).length > 0;
  if (!hasV1 && !unified) {
    throw new VlabError('E_EXEC_SETUP', 'no cgroup filesystem is mounted (looked in /proc/self/mountinfo)');
  }
  if (!hasV1) return { version: 'v2', controllers: [], v1, unified, hierarchies: [], named, roots };
  const version = unified ? 'hybrid' : 'v1';
  return { version, controllers: Object.keys(v1).sort(), v1, unified, hierarchies: [...hierarchies], named, roots };
}

/** Our cgroup (namespace-relative) in the hierarchy with these `keys`, from /proc/self/cgroup's `text`. */
function ownCgroup(text: string, keys: string[]): string | undefined {
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(\/.*)$/.exec(line);
    if (m && m[2]!.split(',').some((k) => keys.includes(k))) return m[3];
  }
  return undefined;
}

/**
 * The cgroup.procs file of each cgroup in `procCgroup` (a process's /proc/PID/cgroup) that is
 * mounted here: what a process writes its pid to, to join that process's cgroups.
 */
export function cgroupProcsFiles(procCgroup: string, layout: CgroupLayout): string[] {
  const out: string[] = [];
  for (const line of procCgroup.split('\n')) {
    const m = /^(\d+):([^:]*):(\/.*)$/.exec(line);
    if (!m) continue;
    const first = m[2]!.split(',')[0]!;
    const mount = m[1] === '0' && !m[2] ? layout.unified : (layout.v1[first] ?? layout.named?.[first]);
    const dir = mount && cgroupDir(mount, m[3]!, layout.roots?.[mount]);
    if (dir) out.push(path.join(dir, 'cgroup.procs'));
  }
  return out;
}

const KNOWN_V1 = new Set(['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'freezer', 'blkio', 'devices']);

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export async function readText(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** readText, synchronously: for kernel-made files (cgroupfs), read in µs. */
export function readTextSync(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}
