/**
 * PreparedRun → OCI runtime-spec config.json (runtime-spec 1.0, config.md and config-linux.md).
 * Pure: no I/O, so tests can read the document.
 */
import type { PreparedRun } from './prepare.ts';
import type { Limits } from './types.ts';
import { DEFAULT_CAPS, MASKED_PATHS, NOFILE_LIMIT, READONLY_PATHS } from './defaults.ts';
import { ociSeccomp } from './seccomp.ts';

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export function buildOciConfig(p: PreparedRun, cgroupsPath: string, limits: Limits = {}): Record<string, unknown> {
  const caps = DEFAULT_CAPS.map((c) => 'CAP_' + c.toUpperCase());
  const root = p.user.uid === 0;
  const namespaces = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (p.network !== 'host') namespaces.push({ type: 'network' });
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: {
        uid: p.user.uid,
        gid: p.user.gid,
        ...(p.user.additionalGids.length ? { additionalGids: p.user.additionalGids } : {}),
      },
      args: p.argv,
      env: p.env,
      cwd: p.cwd,
      // Like moby: a non-root user keeps only the bounding set, no effective/permitted caps.
      capabilities: {
        bounding: caps,
        effective: root ? caps : [],
        permitted: root ? caps : [],
        inheritable: [],
        ambient: [],
      },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: p.nofile ?? NOFILE_LIMIT, soft: p.nofile ?? NOFILE_LIMIT }],
      noNewPrivileges: true,
    },
    root: { path: p.rootfs, readonly: false },
    hostname: p.hostname,
    mounts: [...systemMounts(), ...extraMounts(p)],
    linux: {
      namespaces,
      cgroupsPath,
      resources: { devices: [{ allow: false, access: 'rwm' }], ...resources(limits) },
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
      seccomp: ociSeccomp(),
    },
  };
}

function systemMounts(): OciMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
    },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    {
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
    },
  ];
}

function extraMounts(p: PreparedRun): OciMount[] {
  return p.mounts.map((m) => {
    if (m.type === 'tmpfs') {
      return {
        destination: m.target,
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'nodev', ...(m.options ?? []), ...(m.readonly ? ['ro'] : [])],
      };
    }
    return {
      destination: m.target,
      type: 'bind',
      source: m.source!,
      // nodev as the built-in executor's binds: a device node in the context or a cache dir stays unopenable
      options: ['rbind', 'rprivate', 'nodev', ...(m.options ?? []), m.readonly ? 'ro' : 'rw'],
    };
  });
}

function resources(l: Limits): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (l.memory !== undefined) out.memory = { limit: l.memory, swap: l.memory };
  if (l.cpuShares !== undefined || l.cpuQuota !== undefined || l.cpuPeriod !== undefined) {
    out.cpu = {
      ...(l.cpuShares !== undefined ? { shares: l.cpuShares } : {}),
      ...(l.cpuQuota !== undefined ? { quota: l.cpuQuota } : {}),
      // A period alone is passed on too (runc writes "max PERIOD"), as docker does.
      ...(l.cpuQuota !== undefined || l.cpuPeriod !== undefined ? { period: l.cpuPeriod ?? 100_000 } : {}),
    };
  }
  if (l.pids !== undefined) out.pids = { limit: l.pids };
  return out;
}
