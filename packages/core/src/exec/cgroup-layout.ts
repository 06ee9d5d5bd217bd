/**
 * Which cgroup hierarchies the host has (v1, v2 or hybrid), read once from /proc/self/mountinfo.
 */
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { VlabError } from '@vlab/errors';

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
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const v1: Record<string, string> = {};
  const hierarchies = new Set<string>();
  let unified: string | undefined;
  for (const line of text.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const mountPoint = unescapeMount(pre.split(' ')[4]);
    const [fstype, , superOpts = ''] = post.split(' ');
    if (fstype === 'cgroup2') unified ??= mountPoint;
    if (fstype !== 'cgroup') continue;
    hierarchies.add(mountPoint);
    for (const opt of superOpts.split(',')) {
      if (KNOWN_V1.has(opt)) v1[opt] ??= mountPoint;
    }
  }
  const hasV1 = Object.keys(v1).length > 0;
  if (!hasV1 && !unified) {
    throw new VlabError('E_EXEC_SETUP', 'no cgroup filesystem is mounted (looked in /proc/self/mountinfo)');
  }
  if (!hasV1) {
    const ctrls = (await readText(path.join(unified!, 'cgroup.controllers'))) ?? '';
    return { version: 'v2', controllers: ctrls.split(/\s+/).filter(Boolean), v1, unified, hierarchies: [] };
  }
  const version = unified ? 'hybrid' : 'v1';
  return { version, controllers: Object.keys(v1).sort(), v1, unified, hierarchies: [...hierarchies] };
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
