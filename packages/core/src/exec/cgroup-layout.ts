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
  /** Named v1 hierarchies (`name=systemd` → its mount point). */
  named?: Record<string, string>;
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
  const named: Record<string, string> = {};
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
      if (opt.startsWith('name=')) named[opt] ??= mountPoint;
    }
  }
  const hasV1 = Object.keys(v1).length > 0;
  if (!hasV1 && !unified) {
    throw new VlabError('E_EXEC_SETUP', 'no cgroup filesystem is mounted (looked in /proc/self/mountinfo)');
  }
  if (!hasV1) {
    const ctrls = (await readText(path.join(unified!, 'cgroup.controllers'))) ?? '';
    return { version: 'v2', controllers: ctrls.split(/\s+/).filter(Boolean), v1, unified, hierarchies: [], named };
  }
  const version = unified ? 'hybrid' : 'v1';
  return { version, controllers: Object.keys(v1).sort(), v1, unified, hierarchies: [...hierarchies], named };
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
    if (mount && !m[3]!.includes('/..') && !m[3]!.endsWith(' (deleted)'))
      out.push(path.join(mount, m[3]!, 'cgroup.procs'));
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
