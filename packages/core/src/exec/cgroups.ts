/**
 * Per-run cgroups (v1, v2 and hybrid; the layout is cgroup-layout.ts's).
 *
 * A `Cgroup` is a set of directories, one per hierarchy we use, that all share one relative path
 * (e.g. `vlab/3f2a…`). The built-in executor creates it, writes the limits and puts its trampoline
 * in it; the OCI executor only uses it to read usage and to clean up behind the runtime.
 */
import { promises as fs, readdirSync } from 'node:fs';
import path from 'node:path';
import { VlabError } from '@vlab/errors';
import type { Limits } from './types.ts';
import { pidAlive } from '../store/owner.ts';
import { detectCgroupLayout, readText, readTextSync, type CgroupLayout } from './cgroup-layout.ts';

export { detectCgroupLayout, detectCgroups, type CgroupLayout, type CgroupVersion } from './cgroup-layout.ts';

/** The parent of every per-run cgroup, relative to each hierarchy's root. */
export const CGROUP_PARENT = 'vlab';

/**
 * v1 hierarchies a build container joins: limits (memory, cpu, pids), accounting (cpuacct), and
 * devices (which device nodes it may open); then every other mounted one, by its mount point's
 * name (cpuset, blkio, systemd…), as runc does, so /sys/fs/cgroup shows only its own cgroups.
 */
const V1_JOIN = ['memory', 'cpu', 'cpuacct', 'pids', 'freezer', 'devices'];

/** [key in `Cgroup.dirs`, hierarchy mount point] of every v1 hierarchy a container joins. */
function v1Joined(layout: CgroupLayout): [string, string][] {
  const out: [string, string][] = V1_JOIN.filter((c) => layout.v1[c]).map((c) => [c, layout.v1[c]!]);
  const seen = new Set(out.map(([, d]) => d));
  for (const h of layout.hierarchies) {
    if (!seen.has(h)) out.push([path.basename(h), h]);
    seen.add(h);
  }
  return out;
}

/**
 * A new v1 cpuset cgroup starts with no cpus and mems (unless the parent clones them), and a
 * process cannot join it: copy them down from the parent at every level, as runc does.
 */
async function inheritCpuset(root: string, rel: string): Promise<void> {
  let parent = root;
  for (const part of rel.split('/').filter(Boolean)) {
    const dir = path.join(parent, part);
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      if (!(await readText(path.join(dir, f)))?.trim())
        await write(dir, f, ((await readText(path.join(parent, f))) ?? '').trim());
    }
    parent = dir;
  }
}

/**
 * The v1 device rules (Docker's and runc's defaults): any node may be created, only these opened.
 * Without them a RUN with CAP_MKNOD could make a node for the host's disk and read it.
 * (Pure v2 has no such controller; the built-in executor's nodev mounts close the same door on
 * any layout, see README "Devices".)
 */
export const DEVICE_RULES = [
  'c *:* m',
  'b *:* m',
  'c 1:3 rwm',
  'c 1:5 rwm',
  'c 1:7 rwm',
  'c 1:8 rwm',
  'c 1:9 rwm',
  'c 5:0 rwm',
  'c 5:1 rwm',
  'c 5:2 rwm',
  'c 136:* rwm',
  'c 10:200 rwm',
];

export interface CgroupStats {
  oomKills: number;
  maxMemoryBytes?: number;
  cpuUserMicros?: number;
  cpuSystemMicros?: number;
}

export class Cgroup {
  private constructor(
    readonly layout: CgroupLayout,
    /** Relative path shared by all hierarchies, e.g. `vlab/<id>`. */
    readonly rel: string,
    /** Directories: v1 controller → dir, and `unified` → dir on pure v2. */
    readonly dirs: Record<string, string>,
  ) {}

  /** The handle of an existing (or runtime-managed) cgroup path; nothing is created. */
  static at(layout: CgroupLayout, rel: string): Cgroup {
    const dirs: Record<string, string> = {};
    if (layout.version === 'v2') dirs.unified = path.join(layout.unified!, rel);
    else for (const [key, dir] of v1Joined(layout)) dirs[key] = path.join(dir, rel);
    return new Cgroup(layout, rel, dirs);
  }

  /**
   * Creates the cgroup in every hierarchy and writes the limits. Throws E_EXEC_SETUP (after
   * removing what it made) when a limit cannot be applied. Not idempotent: `rel` must be new.
   */
  static async create(
    layout: CgroupLayout,
    rel: string,
    limits: Limits = {},
    opts: { devices?: boolean } = {},
  ): Promise<Cgroup> {
    const cg = Cgroup.at(layout, rel);
    if (opts.devices === false) delete cg.dirs.devices;
    try {
      if (layout.version === 'v2') await enableV2Controllers(layout.unified!, path.dirname(rel));
      await Promise.all(cg.uniqueDirs().map((dir) => fs.mkdir(dir, { recursive: true })));
      if (layout.v1.cpuset && cg.dirs.cpuset) await inheritCpuset(layout.v1.cpuset, rel);
      await cg.writeLimits(limits);
      if (cg.dirs.devices) {
        await write(cg.dirs.devices, 'devices.deny', 'a');
        await Promise.all(DEVICE_RULES.map((rule) => write(cg.dirs.devices!, 'devices.allow', rule)));
      }
      return cg;
    } catch (e) {
      await cg.destroy().catch(() => {});
      throw new VlabError('E_EXEC_SETUP', `cannot set up cgroup ${rel}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Files a process writes its pid to, to join this cgroup in every hierarchy. */
  procsFiles(): string[] {
    return this.uniqueDirs().map((d) => path.join(d, 'cgroup.procs'));
  }

  private uniqueDirs(): string[] {
    return [...new Set(Object.values(this.dirs))];
  }

  private async writeLimits(l: Limits): Promise<void> {
    const d = this.dirs;
    const period = l.cpuPeriod ?? 100_000;
    if (this.layout.version === 'v2') {
      const u = d.unified;
      if (l.memory !== undefined) {
        await write(u, 'memory.max', String(l.memory));
        await write(u, 'memory.swap.max', '0', true);
      }
      // A period alone is written too, unlimited (docker/runc: "max PERIOD").
      if (l.cpuQuota !== undefined || l.cpuPeriod !== undefined)
        await write(u, 'cpu.max', `${l.cpuQuota ?? 'max'} ${period}`);
      if (l.cpuShares !== undefined) await write(u, 'cpu.weight', String(sharesToWeight(l.cpuShares)));
      if (l.pids !== undefined) await write(u, 'pids.max', String(l.pids));
      return;
    }
    if (l.memory !== undefined) {
      need(d.memory, 'memory');
      await write(d.memory, 'memory.limit_in_bytes', String(l.memory));
      // No swap beyond the limit (memsw exists only with swap accounting).
      await write(d.memory, 'memory.memsw.limit_in_bytes', String(l.memory), true);
    }
    if (l.cpuQuota !== undefined || l.cpuPeriod !== undefined) {
      need(d.cpu, 'cpu');
      await write(d.cpu, 'cpu.cfs_period_us', String(period));
      if (l.cpuQuota !== undefined) await write(d.cpu, 'cpu.cfs_quota_us', String(l.cpuQuota));
    }
    if (l.cpuShares !== undefined) await write(need(d.cpu, 'cpu'), 'cpu.shares', String(l.cpuShares));
    if (l.pids !== undefined) await write(need(d.pids, 'pids'), 'pids.max', String(l.pids));
  }

  /** Live pids in the cgroup (all hierarchies). */
  async pids(): Promise<number[]> {
    // Read synchronously: kernel-made files, µs each, where a thread-pool trip is not (a run pays
    // this after each container).
    const out = new Set<number>();
    for (const t of this.procsFiles().map(readTextSync)) {
      for (const p of (t ?? '').split('\n')) if (p) out.add(Number(p));
    }
    return [...out];
  }

  /** OOM kills, peak memory and cpu time; missing files leave fields undefined. */
  async stats(): Promise<CgroupStats> {
    const d = this.dirs;
    if (this.layout.version === 'v2') {
      const [ev, cpuStat, peak] = ['memory.events', 'cpu.stat', 'memory.peak'].map((f) =>
        readTextSync(path.join(d.unified, f)),
      );
      const events = kv(ev);
      const cpu = kv(cpuStat);
      return {
        oomKills: events.oom_kill ?? 0,
        maxMemoryBytes: num(peak),
        cpuUserMicros: cpu.user_usec,
        cpuSystemMicros: cpu.system_usec,
      };
    }
    const acct = d.cpuacct;
    const read = (dir: string | undefined, f: string) => (dir ? readTextSync(path.join(dir, f)) : undefined);
    const [oomText, userText, sysText, maxText] = [
      read(d.memory, 'memory.oom_control'),
      read(acct, 'cpuacct.usage_user'),
      read(acct, 'cpuacct.usage_sys'),
      read(d.memory, 'memory.max_usage_in_bytes'),
    ];
    const oom = kv(oomText);
    const user = acct ? num(userText) : undefined;
    const sys = acct ? num(sysText) : undefined;
    return {
      oomKills: oom.oom_kill ?? 0,
      maxMemoryBytes: d.memory ? num(maxText) : undefined,
      cpuUserMicros: user === undefined ? undefined : Math.round(user / 1000),
      cpuSystemMicros: sys === undefined ? undefined : Math.round(sys / 1000),
    };
  }

  /** SIGKILLs every process in the cgroup until none is left (or `timeoutMs` passes). */
  async killAll(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    // killed processes leave in well under a millisecond, so look again soon, then less often
    for (let wait = 1; ; wait = Math.min(wait * 2, 10)) {
      const pids = await this.pids();
      if (pids.length === 0) return true;
      for (const p of pids) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      if (Date.now() > deadline) return false;
      await sleep(wait);
    }
  }

  /**
   * Kills what is left and removes the directories (children first, EBUSY retried while the
   * kernel finishes tearing processes down). Idempotent; never throws for a missing cgroup.
   */
  async destroy(): Promise<void> {
    await this.killAll();
    const errors: unknown[] = [];
    await Promise.all(this.uniqueDirs().map((dir) => rmdirTree(dir).catch((e: unknown) => errors.push(e))));
    if (errors.length) {
      throw new VlabError('E_EXEC_CLEANUP', `cannot remove cgroup ${this.rel}`, { cause: errors[0] });
    }
  }
}

/**
 * Per-run cgroups under `parent` whose owner died (named `<owner pid>-<random>`, see
 * prepareRun): a build SIGKILLed mid-RUN leaves them. Relative paths, e.g. `vlab/x/123-ab…`.
 */
export async function orphanCgroups(parent: string): Promise<string[]> {
  const layout = await detectCgroupLayout().catch(() => undefined);
  if (!layout) return [];
  const roots = layout.version === 'v2' ? [layout.unified!] : v1Joined(layout).map(([, d]) => d);
  const names = new Set<string>();
  // synchronous: cgroupfs dirs list in µs, and every build start looks (api.ts)
  const list = (dir: string) => {
    try {
      return readdirSync(dir, { withFileTypes: true });
    } catch {
      return [];
    }
  };
  for (const r of new Set(roots)) {
    for (const e of list(path.join(r, parent))) {
      const m = /^(\d+)-[0-9a-f]+$/.exec(e.name);
      if (e.isDirectory() && m && !pidAlive(Number(m[1]))) names.add(`${parent}/${e.name}`);
    }
  }
  return [...names].sort();
}

/** Kill what is left in a dead owner's cgroups and remove them (executor start, fsck --repair). */
export async function sweepOrphanCgroups(parent: string): Promise<void> {
  const layout = await detectCgroupLayout().catch(() => undefined);
  if (!layout) return;
  for (const rel of await orphanCgroups(parent))
    await Cgroup.at(layout, rel)
      .destroy()
      .catch(() => {});
}

/** rmdir a cgroup and any sub-cgroups a runtime left in it, deepest first. */
async function rmdirTree(dir: string): Promise<void> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  for (const ent of entries) if (ent.isDirectory()) await rmdirTree(path.join(dir, ent.name));
  for (let i = 0; ; i++) {
    try {
      await fs.rmdir(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || i >= 200) throw e;
      await sleep(Math.min(1 << i, 10));
    }
  }
}

/** On pure v2 a controller must be enabled in every ancestor's subtree_control. */
async function enableV2Controllers(root: string, parentRel: string): Promise<void> {
  const want = ['memory', 'cpu', 'pids'];
  let dir = root;
  for (const part of ['', ...parentRel.split('/').filter((p) => p && p !== '.')]) {
    dir = path.join(dir, part);
    await fs.mkdir(dir, { recursive: true });
    const avail = ((await readText(path.join(dir, 'cgroup.controllers'))) ?? '').split(/\s+/);
    const enable = want.filter((c) => avail.includes(c)).map((c) => `+${c}`);
    if (enable.length) await write(dir, 'cgroup.subtree_control', enable.join(' '), true);
  }
}

function need(dir: string | undefined, ctrl: string): string {
  if (!dir) throw new Error(`cgroup controller ${ctrl} is not mounted`);
  return dir;
}

async function write(dir: string, file: string, value: string, optional = false): Promise<void> {
  try {
    await fs.writeFile(path.join(dir, file), value);
  } catch (e) {
    if (optional) return;
    throw new Error(`writing ${value} to ${file}: ${(e as Error).message}`, { cause: e });
  }
}

function kv(text: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (text ?? '').split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined) out[k] = Number(v);
  }
  return out;
}

function num(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text.trim());
  return Number.isFinite(n) ? n : undefined;
}

/** Docker's conversion of v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000). */
export function sharesToWeight(shares: number): number {
  return Math.max(1, Math.min(10000, 1 + Math.floor(((shares - 2) * 9999) / 262142)));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
